"""The node daemon survives malformed and hostile input on its Unix socket.

A local cluster (``num_cpus=1``) is started once for the module. Each test opens raw
connections to the node's socket (``<session_dir>/sockets/node.sock``) and sends bytes no real
client would: garbage, frames with a wrong protocol version or an impossible length, truncated
messages, message types out of place. After each, the node daemon must still be the same
living process, must still accept and greet new clients, and the real driver's tasks must still
run (``quanta.get(f.remote(1)) == 1``).

Wire format (src/protocol/frame.h, messages.h), all little-endian:
    frame  = u32 body_len | u16 version (= quanta._core.PROTOCOL_VERSION) | u16 type | body
    Hello  (type 1) = u8 role (1 driver, 2 worker) | bytes worker_token | u32 pid | u8 log_to_driver
    HelloReply (type 32) = u64 client_id | bytes node_id | bytes session_dir | bytes store_path
                           | u64 store_size | u64 inline_threshold  (bytes = u32 len + data)
"""

import os
import random
import socket
import struct
import time

import pytest

import quanta
from quanta._private import session
from conftest import alive, descendants, run_driver

from quanta._core import PROTOCOL_VERSION  # noqa: E402  (the engine's)
MAX_FRAME_BODY = 1 << 30

HELLO = 1
REGISTER_FUNCTION = 2
SUBMIT_TASK = 3
PUT_OBJECT = 4
SUBSCRIBE = 5
REF_DELTAS = 6
WORKER_BLOCKED = 7
TASK_DONE = 9
GET_CLUSTER_INFO = 11
KILL_ACTOR = 12
ACTOR_NAME = 13
HELLO_REPLY = 32
OBJECT_READY = 33
EXECUTE_TASK = 34
CLUSTER_INFO = 37
ACTOR_NAME_REPLY = 38

TASK_NORMAL = 0
TASK_ACTOR_METHOD = 2
KIND_ACTOR_DIED = 4

ROLE_DRIVER = 1
ROLE_WORKER = 2

CLOSE_TIMEOUT_S = 10.0


@quanta.remote
def f(x):
    return x


# ----------------------------------------------------------------------------- wire helpers


def frame(msg_type, body=b"", *, version=PROTOCOL_VERSION, length=None):
    size = len(body) if length is None else length
    return struct.pack("<IHH", size, version, msg_type) + body


def hello_body(role=ROLE_DRIVER, token=b"", pid=None, log_to_driver=0):
    if isinstance(token, int):
        token = str(token).encode()
    return (struct.pack("<BI", role, len(token)) + token +
            struct.pack("<IB", os.getpid() if pid is None else pid, log_to_driver))


def wire_bytes(data):
    return struct.pack("<I", len(data)) + data


def wire_ids(ids):
    return struct.pack("<I", len(ids)) + b"".join(ids)


def object_id(creator, sequence, index):
    return struct.pack("<QII", creator, sequence, index)


_task_seq = iter(range(0xFFFF0000, 0xFFFFFFFF))


def task_id(client_id):
    return object_id(client_id, next(_task_seq), 0)


def task_spec_body(client_id, *, tid=None, kind=TASK_NORMAL, actor_id=None, method=b"m",
                   arg_refs=(), arg_count=None, num_returns=1, priority=0):
    """A TaskSpec body (messages.h); arg_count forges the arg_refs element count."""
    body = tid or task_id(client_id)
    body += struct.pack("<B", kind)
    if kind != TASK_NORMAL:
        body += actor_id or object_id(0xAC7, 1, 0)
    if kind == TASK_ACTOR_METHOD:
        body += wire_bytes(method) + wire_bytes(b"")  # method, concurrency group (default)
    body += struct.pack("<Q", client_id)  # job id
    body += wire_bytes(b"no-such-function") + wire_bytes(b"robustness") + wire_bytes(b"")
    ids = wire_ids(list(arg_refs))
    if arg_count is not None:
        ids = struct.pack("<I", arg_count) + ids[4:]
    body += ids
    body += wire_ids([])  # nested refs
    body += struct.pack("<I", num_returns)
    body += struct.pack("<I", 0)  # resources: none
    body += struct.pack("<iB", 0, 0)  # max_retries, retry_exceptions
    body += wire_bytes(b"") + struct.pack("<I", 0)  # retry exception types, timeout_ms
    body += struct.pack("<B", 0)  # scheduling strategy: default
    body += struct.pack("<BII", 0, 0, 0)  # generator: none, backpressure: none; attempt (set by an owner's node when it forwards the task)
    body += struct.pack("<i", priority)
    body += wire_bytes(b"") + wire_bytes(b"")  # runtime env: hash and JSON (none: the node's own)
    return body


def never_sealed_object():
    """An object id no client will ever produce (its creator id is not a client's)."""
    return object_id(0x0DDBA11, random.getrandbits(32), 1)


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_frame(sock):
    size, version, msg_type = struct.unpack("<IHH", recv_exact(sock, 8))
    assert version == PROTOCOL_VERSION
    return msg_type, recv_exact(sock, size)


def parse_hello_reply(body):
    client_id = struct.unpack_from("<Q", body, 0)[0]
    pos = 8
    (n,) = struct.unpack_from("<I", body, pos)
    node_id = body[pos + 4 : pos + 4 + n]
    pos += 4 + n
    (n,) = struct.unpack_from("<I", body, pos)
    session_dir = body[pos + 4 : pos + 4 + n]
    pos += 4 + n
    (n,) = struct.unpack_from("<I", body, pos)
    store_path = body[pos + 4 : pos + 4 + n]
    pos += 4 + n
    store_size, inline_threshold, cluster_id = struct.unpack_from("<QQQ", body, pos)
    assert store_path.startswith(b"/proc/") and store_size > 0 and inline_threshold > 0
    assert cluster_id != 0  # every node belongs to a cluster (refs are valid only there)
    assert pos + 24 == len(body), "HelloReply has trailing bytes"
    return client_id, node_id.decode(), session_dir.decode()


def wait_closed_by_peer(sock, timeout=CLOSE_TIMEOUT_S):
    """True once the node has closed this connection (EOF or reset); False on timeout."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def send_all_tolerant(sock, data):
    """sendall, but a node that already hung up on us is not an error here."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


# ----------------------------------------------------------------------------- fixtures


class Node:
    def __init__(self, socket_path, identity, session_dir):
        self.socket_path = socket_path
        self.identity = identity
        self.session_dir = session_dir

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CLOSE_TIMEOUT_S)
        sock.connect(self.socket_path)
        return sock

    def hello(self, sock):
        """Performs a valid driver handshake on `sock`; returns the client id."""
        sock.sendall(frame(HELLO, hello_body()))
        msg_type, body = read_frame(sock)
        assert msg_type == HELLO_REPLY
        client_id, node_id, session_dir = parse_hello_reply(body)
        assert session_dir == self.session_dir
        assert node_id
        return client_id


def _node_daemon_identity():
    for pid, starttime in descendants(os.getpid()):
        try:
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        except OSError:
            continue
        if exe == "quanta_node":
            return (pid, starttime)
    return None


@pytest.fixture(scope="module")
def node():
    if quanta.is_initialized():
        quanta.shutdown()
    quanta.init(num_cpus=1)
    try:
        session_dir = session.current_core().session_dir
        socket_path = os.path.join(session_dir, "sockets", "node.sock")
        assert os.path.exists(socket_path), socket_path
        identity = _node_daemon_identity()
        assert identity is not None, "no quanta_node process among this driver's descendants"
        assert quanta.get(f.remote(1)) == 1
        yield Node(socket_path, identity, session_dir)
    finally:
        quanta.shutdown()


@pytest.fixture
def healthy_after(node):
    """Yields the node; afterwards checks that it survived whatever the test sent."""
    yield node
    assert_node_healthy(node)


def assert_node_healthy(node):
    assert alive(node.identity), "the node daemon died"
    assert os.path.exists(node.socket_path), "the node removed its socket"
    # A brand-new client is still greeted...
    with node.connect() as sock:
        assert node.hello(sock) != 0
    # ...and the real driver's tasks still run.
    assert quanta.get(f.remote(1), timeout=60) == 1
    assert alive(node.identity), "the node daemon died"


# ----------------------------------------------------------------------------- bad framing


def test_random_garbage(healthy_after):
    data = random.Random(20240501).randbytes(4096)
    assert data[4:6] != struct.pack("<H", PROTOCOL_VERSION), "garbage must not look like a header"
    with healthy_after.connect() as sock:
        send_all_tolerant(sock, data)
        assert wait_closed_by_peer(sock), "the node kept a connection that sent garbage"


def test_random_garbage_after_hello(healthy_after):
    data = random.Random(7).randbytes(10000)
    assert data[4:6] != struct.pack("<H", PROTOCOL_VERSION)
    with healthy_after.connect() as sock:
        healthy_after.hello(sock)
        send_all_tolerant(sock, data)
        assert wait_closed_by_peer(sock)


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 0x0100, 0xFFFF])
def test_wrong_protocol_version(healthy_after, version):
    with healthy_after.connect() as sock:
        send_all_tolerant(sock, frame(HELLO, hello_body(), version=version))
        assert wait_closed_by_peer(sock)


def test_wrong_version_after_valid_hello(healthy_after):
    with healthy_after.connect() as sock:
        healthy_after.hello(sock)
        send_all_tolerant(sock, frame(SUBSCRIBE, wire_ids([]), version=PROTOCOL_VERSION + 1))
        assert wait_closed_by_peer(sock)


@pytest.mark.parametrize("length", [MAX_FRAME_BODY + 1, 0x80000000, 0xFFFFFFFF])
def test_huge_length(healthy_after, length):
    with healthy_after.connect() as sock:
        send_all_tolerant(sock, frame(HELLO, hello_body(), length=length))
        assert wait_closed_by_peer(sock)


def test_large_legal_length_then_hang_up(healthy_after):
    # 64 MiB announced, a few bytes sent, then the client disappears mid-frame.
    with healthy_after.connect() as sock:
        sock.sendall(frame(HELLO, b"\x01\x02\x03", length=64 << 20))
        time.sleep(0.2)
    # (checked by healthy_after)


# ----------------------------------------------------------------------------- truncated Hello


@pytest.mark.parametrize("cut", range(14))
def test_truncated_hello_body(healthy_after, cut):
    """A complete frame whose body is a Hello cut short is rejected."""
    body = hello_body(token=b"abcd")
    assert len(body) == 14
    with healthy_after.connect() as sock:
        send_all_tolerant(sock, frame(HELLO, body[:cut]))
        assert wait_closed_by_peer(sock)


def test_hello_with_trailing_bytes(healthy_after):
    with healthy_after.connect() as sock:
        send_all_tolerant(sock, frame(HELLO, hello_body() + b"\x00"))
        assert wait_closed_by_peer(sock)


@pytest.mark.parametrize("cut", [1, 4, 8, 9, 15, 21])
def test_partial_hello_frame_then_hang_up(healthy_after, cut):
    """The client sends part of a Hello frame and disconnects."""
    data = frame(HELLO, hello_body())
    with healthy_after.connect() as sock:
        sock.sendall(data[:cut])
        time.sleep(0.05)
        sock.shutdown(socket.SHUT_WR)
        assert wait_closed_by_peer(sock)


def test_partial_hello_frame_stalls_without_harm(healthy_after):
    """A client that sends half a frame and then nothing only blocks itself."""
    data = frame(HELLO, hello_body())
    with healthy_after.connect() as stalled:
        stalled.sendall(data[:10])
        assert_node_healthy(healthy_after)  # while the stalled connection is still open
        stalled.sendall(data[10:])
        msg_type, _ = read_frame(stalled)
        assert msg_type == HELLO_REPLY, "the rest of the frame completes the handshake"


@pytest.mark.parametrize("role", [0, 4, 255])
def test_unknown_role(healthy_after, role):
    with healthy_after.connect() as sock:
        send_all_tolerant(sock, frame(HELLO, hello_body(role=role)))
        assert wait_closed_by_peer(sock)


def test_invalid_boolean_in_hello(healthy_after):
    body = hello_body()[:-1] + b"\x02"
    with healthy_after.connect() as sock:
        send_all_tolerant(sock, frame(HELLO, body))
        assert wait_closed_by_peer(sock)


def test_worker_hello_with_unknown_token(healthy_after):
    with healthy_after.connect() as sock:
        send_all_tolerant(sock, frame(HELLO, hello_body(role=ROLE_WORKER, token=b"0123456789abcdef0123456789abcdef")))
        assert wait_closed_by_peer(sock)


def test_duplicate_hello(healthy_after):
    with healthy_after.connect() as sock:
        healthy_after.hello(sock)
        send_all_tolerant(sock, frame(HELLO, hello_body()))
        assert wait_closed_by_peer(sock)


# ----------------------------------------------------------------------------- messages out of place


def test_submit_task_before_hello(healthy_after):
    with healthy_after.connect() as sock:
        send_all_tolerant(sock, frame(SUBMIT_TASK, task_spec_body(1)))
        assert wait_closed_by_peer(sock)


def test_valid_hello_then_truncated_submit_task(healthy_after):
    with healthy_after.connect() as sock:
        client_id = healthy_after.hello(sock)
        body = task_spec_body(client_id)
        send_all_tolerant(sock, frame(SUBMIT_TASK, body[: len(body) // 2]))
        assert wait_closed_by_peer(sock)


@pytest.mark.parametrize("cut", [0, 1, 16, 23, 24, 40])
def test_valid_hello_then_submit_task_cut_at(healthy_after, cut):
    with healthy_after.connect() as sock:
        client_id = healthy_after.hello(sock)
        send_all_tolerant(sock, frame(SUBMIT_TASK, task_spec_body(client_id)[:cut]))
        assert wait_closed_by_peer(sock)


def test_valid_hello_then_submit_task_with_forged_count(healthy_after):
    with healthy_after.connect() as sock:
        client_id = healthy_after.hello(sock)
        body = task_spec_body(client_id, arg_count=0xFFFFFFFF)
        send_all_tolerant(sock, frame(SUBMIT_TASK, body))
        assert wait_closed_by_peer(sock)


def test_valid_hello_then_submit_task_with_trailing_bytes(healthy_after):
    with healthy_after.connect() as sock:
        client_id = healthy_after.hello(sock)
        send_all_tolerant(sock, frame(SUBMIT_TASK, task_spec_body(client_id) + b"extra"))
        assert wait_closed_by_peer(sock)


def test_valid_hello_then_submit_task_with_too_many_returns(healthy_after):
    with healthy_after.connect() as sock:
        client_id = healthy_after.hello(sock)
        send_all_tolerant(sock, frame(SUBMIT_TASK, task_spec_body(client_id, num_returns=0xFFFFFFFF)))
        assert wait_closed_by_peer(sock)


@pytest.mark.parametrize("priority", [1001, -1001, 2 ** 31 - 1])
def test_submit_task_with_a_priority_out_of_range(healthy_after, priority):
    with healthy_after.connect() as sock:
        client_id = healthy_after.hello(sock)
        send_all_tolerant(sock, frame(SUBMIT_TASK, task_spec_body(client_id, priority=priority)))
        assert wait_closed_by_peer(sock)


def test_valid_hello_then_submit_task_with_foreign_task_id(healthy_after):
    """A task id minted by another client is refused (it could collide with real tasks)."""
    with healthy_after.connect() as sock:
        client_id = healthy_after.hello(sock)
        send_all_tolerant(sock, frame(SUBMIT_TASK, task_spec_body(client_id ^ 0x5A5A)))
        assert wait_closed_by_peer(sock)


def test_unknown_object_kind_in_put(healthy_after):
    with healthy_after.connect() as sock:
        client_id = healthy_after.hello(sock)
        body = object_id(client_id, 1, 0xFFFFFFFF) + b"\x06" + wire_bytes(b"data") + wire_ids([])
        send_all_tolerant(sock, frame(PUT_OBJECT, body))
        assert wait_closed_by_peer(sock)


def test_forged_count_in_ref_deltas(healthy_after):
    with healthy_after.connect() as sock:
        healthy_after.hello(sock)
        send_all_tolerant(sock, frame(REF_DELTAS, struct.pack("<I", 0x7FFFFFFF) + b"\x00" * 20))
        assert wait_closed_by_peer(sock)


@pytest.mark.parametrize("msg_type", [0, 999, 0xFFFF, HELLO_REPLY, EXECUTE_TASK, 64, 66])
def test_unexpected_message_type(healthy_after, msg_type):
    with healthy_after.connect() as sock:
        healthy_after.hello(sock)
        send_all_tolerant(sock, frame(msg_type, b""))
        assert wait_closed_by_peer(sock)


@pytest.mark.parametrize("msg_type", [WORKER_BLOCKED, TASK_DONE])
def test_worker_only_messages_from_a_driver(healthy_after, msg_type):
    with healthy_after.connect() as sock:
        healthy_after.hello(sock)
        send_all_tolerant(sock, frame(msg_type, b""))
        assert wait_closed_by_peer(sock)


def test_well_formed_submit_task_is_accepted(healthy_after):
    """Anchors the malformed variants below: the same encoding, intact, is accepted.

    The task's argument is an id nobody ever created, so the task fails at once (an
    ObjectLost return pushed to the submitter, instead of waiting forever); the connection
    stays open and keeps answering requests.
    """
    with healthy_after.connect() as sock:
        client_id = healthy_after.hello(sock)
        body = task_spec_body(client_id, arg_refs=[never_sealed_object()])
        sock.sendall(frame(SUBMIT_TASK, body))
        msg_type, reply = read_frame(sock)
        assert msg_type == OBJECT_READY
        assert reply[:16] == body[:12] + struct.pack("<I", 1)  # the task's first return
        assert reply[16] == 5  # ObjectKind kObjectLost
        assert b"not part of this cluster" in reply  # its id names no node of ours
        sock.sendall(frame(GET_CLUSTER_INFO, struct.pack("<Q", 4242)))
        msg_type, body = read_frame(sock)
        assert msg_type == CLUSTER_INFO
        assert struct.unpack_from("<Q", body)[0] == 4242


def test_actor_call_to_unknown_actor_fails_cleanly(healthy_after):
    """A well-formed method call for an actor that does not exist: its return is an error."""
    with healthy_after.connect() as sock:
        client_id = healthy_after.hello(sock)
        tid = task_id(client_id)
        sock.sendall(frame(SUBMIT_TASK, task_spec_body(client_id, tid=tid, kind=TASK_ACTOR_METHOD,
                                                       actor_id=object_id(0xAC7, 99, 0))))
        msg_type, body = read_frame(sock)
        assert msg_type == OBJECT_READY
        return_id = tid[:12] + struct.pack("<I", 1)
        assert body[:16] == return_id
        assert body[16] == KIND_ACTOR_DIED


@pytest.mark.parametrize("kind", [3, 255])
def test_submit_task_with_unknown_kind(healthy_after, kind):
    with healthy_after.connect() as sock:
        client_id = healthy_after.hello(sock)
        body = bytearray(task_spec_body(client_id))
        body[16] = kind
        send_all_tolerant(sock, frame(SUBMIT_TASK, bytes(body)))
        assert wait_closed_by_peer(sock)


def test_kill_unknown_actor_is_harmless(healthy_after):
    with healthy_after.connect() as sock:
        healthy_after.hello(sock)
        sock.sendall(frame(KILL_ACTOR, object_id(0xAC7, 12345, 0) + b"\x01"))
        sock.sendall(frame(GET_CLUSTER_INFO, struct.pack("<Q", 1)))
        assert read_frame(sock)[0] == CLUSTER_INFO


def test_actor_name_lookup_of_unknown_name(healthy_after):
    with healthy_after.connect() as sock:
        healthy_after.hello(sock)
        body = struct.pack("<QB", 77, 1) + wire_bytes(b"nobody") + wire_bytes(b"") + bytes(16) + wire_bytes(b"")
        sock.sendall(frame(ACTOR_NAME, body))
        msg_type, reply = read_frame(sock)
        assert msg_type == ACTOR_NAME_REPLY
        request_id, ok = struct.unpack_from("<QB", reply)
        assert (request_id, ok) == (77, 0)


@pytest.mark.parametrize("op", [3, 255])
def test_actor_name_with_unknown_op(healthy_after, op):
    with healthy_after.connect() as sock:
        healthy_after.hello(sock)
        body = struct.pack("<QB", 1, op) + wire_bytes(b"x") + wire_bytes(b"") + bytes(16) + wire_bytes(b"")
        send_all_tolerant(sock, frame(ACTOR_NAME, body))
        assert wait_closed_by_peer(sock)


# ----------------------------------------------------------------------------- volume


def test_many_abandoned_connections(healthy_after):
    socks = []
    try:
        for i in range(100):
            sock = healthy_after.connect()
            socks.append(sock)
            kind = i % 4
            if kind == 0:
                sock.sendall(frame(HELLO, hello_body())[: 1 + i % 20])
            elif kind == 1:
                send_all_tolerant(sock, b"\xff" * (i + 8))
            elif kind == 2:
                healthy_after.hello(sock)
            # kind 3: connect and say nothing
    finally:
        for sock in socks:
            sock.close()


def test_valid_frames_split_into_single_bytes(healthy_after):
    """Not an attack, but a stress on framing: a handshake trickled one byte at a time."""
    data = frame(HELLO, hello_body())
    with healthy_after.connect() as sock:
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
            time.sleep(0.002)
        msg_type, body = read_frame(sock)
        assert msg_type == HELLO_REPLY
        assert parse_hello_reply(body)[2] == healthy_after.session_dir


# ----------------------------------------------------------------------------- separate clusters
# These run a driver program with its own cluster, so a crash cannot take down the shared one.

_FIND_NODE = """
import os
def node_identity():
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                rest = fh.read().rsplit(")", 1)[1].split()
            exe = os.path.basename(os.readlink(f"/proc/{name}/exe"))
        except OSError:
            continue
        if exe == "quanta_node" and int(rest[1]) == os.getpid():
            return int(name), rest[19]
def node_alive(ident):
    try:
        with open(f"/proc/{ident[0]}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return rest[0] not in ("Z", "X") and rest[19] == ident[1]
"""


def test_long_chain_of_nested_refs_is_released_without_crashing_the_node():
    """`r = put(0); for _ in range(n): r = put([r])`, then drop `r`: the node frees the whole
    chain. Releasing it recursively (object_table.cc Erase -> RemoveRef -> Erase ...) overflows
    the node's stack at around 100k links."""
    proc = run_driver(_FIND_NODE + """
import time
import quanta
quanta.init(num_cpus=1)
node = node_identity()
assert node is not None
ref = quanta.put(0)
for _ in range(200_000):
    ref = quanta.put([ref])
del ref
time.sleep(1.0)
print("node alive after release:", node_alive(node), flush=True)

@quanta.remote
def f(x):
    return x

print("task result:", quanta.get(f.remote(1), timeout=30), flush=True)
""", timeout=240)
    out = proc.stdout + proc.stderr
    assert "node alive after release: True" in proc.stdout, out
    assert "task result: 1" in proc.stdout, out
    assert proc.returncode == 0, out


def test_driver_raises_instead_of_crashing_when_the_node_is_gone():
    """If the node daemon dies, API calls in the driver raise a Python exception. Status ->
    exception conversion (bindings/common.cc ThrowIfError) must hold the GIL; calling it inside
    a gil_scoped_release block segfaults the driver instead."""
    proc = run_driver(_FIND_NODE + """
import signal, time
import quanta

@quanta.remote
def f(x):
    return x

quanta.init(num_cpus=1)
assert quanta.get(f.remote(1)) == 1
node = node_identity()
os.kill(node[0], signal.SIGKILL)
deadline = time.monotonic() + 10
while node_alive(node) and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.5)

@quanta.remote
def g(x):
    return x

for name, call in [("put", lambda: quanta.put(1)),
                   ("remote", lambda: g.remote(1)),
                   ("get", lambda: quanta.get(f.remote(2), timeout=5))]:
    try:
        call()
        print(name, "returned", flush=True)
    except Exception as e:
        print(name, "raised", type(e).__name__, flush=True)
print("driver survived", flush=True)
""", timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode >= 0, f"the driver was killed by signal {-proc.returncode}:\n{out}"
    assert "driver survived" in proc.stdout, out
    for name in ("put", "remote", "get"):
        assert f"{name} raised" in proc.stdout, out
