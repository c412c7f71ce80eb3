"""The daemons' TCP ports survive hostile and broken input.

A two-node cluster (quanta.cluster_utils.Cluster on 127.0.0.1) is started once for the module,
with this process as its driver. Each test talks raw TCP to the head's control port (the
cluster address) or to a node's peer port (`quanta.nodes()` NodeManagerPort): garbage, broken
handshakes, a wrong HMAC, clients that implement the handshake correctly (below, with Python's
`hmac`) and then send malformed, oversized or truncated frames, other protocol versions in both
directions, a peer that never reads, and thousands of connections that never handshake. After
every case the daemons must be the same living processes, must have logged the rejection, and
must still serve: the driver's tasks still run on both nodes and the head still answers.

The handshake (src/net/handshake.h), all little-endian, fixed sizes:
    client -> server  Hello      44 B  "QNTA" u16 min u16 max u8 channel u8[3] nonce_c[32]
    server -> client  Challenge  76 B  "QNTA" u16 version (0 refused) u16 min u16 max u16 0
                                        nonce_s[32] HMAC(token, "quanta server" ch nonce_c nonce_s)
    client -> server  Proof      32 B  HMAC(token, "quanta client" ch nonce_s nonce_c)
    server -> client  Welcome     4 B  u8 status (1 ok, 2 wrong token) u8[3]
Then frames: u32 body_len | u16 version (2) | u16 type | body.
"""

import hashlib
import hmac
import os
import resource
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import quanta
from quanta import _core
from quanta.cluster_utils import Cluster
from conftest import alive, process_identity

from quanta._core import PROTOCOL_VERSION  # noqa: E402  (the engine's)
MAGIC = b"QNTA"
CH_CONTROL, CH_PEER, CH_DATA, CH_TOOL, CH_LANE = 1, 2, 3, 4, 5

GET_CLUSTER_INFO = 11
CLUSTER_INFO = 37
REGISTER_NODE = 64
REGISTER_NODE_REPLY = 65
HEARTBEAT = 67
NODE_TABLE = 69
PEER_HELLO = 96
FORWARD_TASK = 97

MAX_FRAME_BEFORE_REGISTER = 64 * 1024  # control_server.cc
MAX_FRAME_BEFORE_PEER_HELLO = 4096     # peer_manager.cc
MiB = 1 << 20


@quanta.remote
def f(x):
    return x


@quanta.remote(resources={"peer_box": 1})
def on_node(x):
    return x, os.environ["QUANTA_SESSION_DIR"]


# ----------------------------------------------------------------------------- wire helpers


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def mac(token, label, channel, first, second):
    return hmac.new(token.encode(), label + bytes([channel]) + first + second, hashlib.sha256).digest()


def hello_msg(channel, nonce, lo=PROTOCOL_VERSION, hi=PROTOCOL_VERSION, magic=MAGIC):
    return magic + struct.pack("<HHB3x", lo, hi, channel) + nonce


def parse_challenge(data):
    assert len(data) == 76
    magic, version, smin, smax, pad = struct.unpack_from("<4sHHHH", data)
    return {"magic": magic, "version": version, "min": smin, "max": smax, "pad": pad,
            "nonce": data[12:44], "mac": data[44:76]}


def challenge_msg(token, channel, nonce_c, nonce_s, version=PROTOCOL_VERSION, lo=PROTOCOL_VERSION,
                  hi=PROTOCOL_VERSION):
    proof = mac(token, b"quanta server", channel, nonce_c, nonce_s) if version else bytes(32)
    return MAGIC + struct.pack("<HHHH", version, lo, hi, 0) + nonce_s + proof


def frame(msg_type, body=b"", *, version=PROTOCOL_VERSION, length=None):
    return struct.pack("<IHH", len(body) if length is None else length, version, msg_type) + body


def read_frame(sock):
    size, version, msg_type = struct.unpack("<IHH", recv_exact(sock, 8))
    assert version == PROTOCOL_VERSION
    return msg_type, recv_exact(sock, size)


def wire_bytes(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<I", len(b)) + b


def wire_resources(res):
    return struct.pack("<I", len(res)) + b"".join(wire_bytes(k) + struct.pack("<q", v) for k, v in res.items())


def node_info(node_id, *, index=0, address="127.0.0.1", port=0, resources=None, flags=0):
    res = {k: int(v * 10000) for k, v in (resources or {}).items()}
    return (wire_bytes(node_id) + struct.pack("<I", index) + wire_bytes(address) + struct.pack("<I", port)
            + wire_bytes("") + wire_bytes("") + b"\x01" + wire_resources(res) + wire_resources(res)
            + struct.pack("<I", 0) + struct.pack("<QQB", 0, 0, flags) + wire_bytes(""))


class Parser:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v if len(v) > 1 else v[0]

    def bytes(self):
        n = self.take("I")
        v = self.data[self.pos:self.pos + n]
        assert len(v) == n
        self.pos += n
        return v

    def resources(self):
        return {self.bytes().decode(): self.take("q") / 10000 for _ in range(self.take("I"))}

    def node(self):
        n = {"node_id": self.bytes().decode(), "index": self.take("I"), "address": self.bytes().decode(),
             "port": self.take("I"), "socket": self.bytes(), "session": self.bytes(), "alive": self.take("B")}
        n["total"], n["available"] = self.resources(), self.resources()
        n["labels"] = {self.bytes(): self.bytes() for _ in range(self.take("I"))}
        n["start"], n["incarnation"], n["flags"] = self.take("QQB")
        n["death_reason"] = self.bytes().decode()
        return n

    def end(self):
        assert self.pos == len(self.data), f"{len(self.data) - self.pos} trailing bytes"


def parse_cluster_info(body):
    p = Parser(body)
    request_id = p.take("Q")
    nodes = [p.node() for _ in range(p.take("I"))]
    p.end()
    return request_id, nodes


def parse_register_reply(body):
    p = Parser(body)
    ok, index, cluster_id, incarnation, hb_interval, hb_timeout, reconnect_timeout = p.take("BIQQIII")
    error = p.bytes().decode()
    p.end()
    return {"ok": ok, "index": index, "cluster_id": cluster_id, "incarnation": incarnation,
            "reconnect_timeout_ms": reconnect_timeout, "error": error}


def wait_closed_by_peer(sock, timeout=10.0):
    """True once the daemon has closed this connection (EOF or reset); False on timeout."""
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


def send_tolerant(sock, data):
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def num_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# ----------------------------------------------------------------------------- the cluster


class Daemon:
    def __init__(self, name, pid, host, port, log):
        self.name, self.pid, self.host, self.port, self.log = name, pid, host, port, log
        self.identity = process_identity(pid)

    def connect(self, timeout=10.0):
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.settimeout(timeout)
        return s

    def log_text(self):
        with open(self.log, errors="replace") as fh:
            return fh.read()

    def log_mark(self):
        return os.path.getsize(self.log)

    def wait_log(self, text, since=0, timeout=10.0):
        """The log (from offset `since`) gets a line containing `text`; returns that line."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log, errors="replace") as fh:
                fh.seek(since)
                for line in fh:
                    if text in line:
                        return line
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} log has no line with {text!r} since offset {since}:\n"
                                     + self.log_text()[since:][-3000:])
            time.sleep(0.05)


class Setup:
    def __init__(self, cluster):
        self.cluster = cluster
        self.token = cluster._token
        head = cluster.head_node
        node = cluster.worker_nodes[0]
        self.node_session = node.session_dir
        roles = dict((role, p.pid) for role, p in head._session._procs)
        host, port = cluster.address.rsplit(":", 1)
        self.control = Daemon("control", roles["control"], host, int(port),
                              os.path.join(head.session_dir, "logs", "control.log"))
        self.head_node_pid = roles["node"]
        self.head_node_log = os.path.join(head.session_dir, "logs", "node.log")
        info = [n for n in quanta.nodes() if n["NodeID"] == node.node_id][0]
        (node_pid,) = node.pids
        self.node = Daemon("node", node_pid, info["NodeManagerAddress"], info["NodeManagerPort"],
                           os.path.join(node.session_dir, "logs", "node.log"))

    def assert_serving(self):
        for d in (self.control, self.node):
            assert alive(d.identity), f"the {d.name} daemon died"
        assert alive(process_identity(self.head_node_pid))
        assert quanta.get(f.remote(1), timeout=60) == 1
        assert quanta.get(on_node.remote(2), timeout=60) == (2, self.node_session)
        assert sum(n["alive"] for n in _core.query_cluster(self.cluster.address, 5000)) >= 2

    # -- a correct Python client of the handshake

    def handshake(self, daemon, channel, *, lo=PROTOCOL_VERSION, hi=PROTOCOL_VERSION):
        """Authenticates on `channel`; returns the open socket (the Welcome was ok)."""
        s = daemon.connect()
        nonce_c = os.urandom(32)
        s.sendall(hello_msg(channel, nonce_c, lo, hi))
        ch = parse_challenge(recv_exact(s, 76))
        assert ch["magic"] == MAGIC and ch["version"] == PROTOCOL_VERSION and ch["pad"] == 0, ch
        # The server proves it holds the token too.
        assert hmac.compare_digest(ch["mac"], mac(self.token, b"quanta server", channel, nonce_c, ch["nonce"]))
        s.sendall(mac(self.token, b"quanta client", channel, ch["nonce"], nonce_c))
        assert recv_exact(s, 4) == b"\x01\x00\x00\x00"
        return s

    def register_fake_node(self, *, port=0, resources=None):
        """A Python "node" joined over TCP: returns (socket, RegisterNodeReply fields)."""
        s = self.handshake(self.control, CH_CONTROL)
        s.sendall(frame(REGISTER_NODE, node_info(os.urandom(16).hex(), port=port, resources=resources)))
        msg_type, body = read_frame(s)
        assert msg_type == REGISTER_NODE_REPLY
        reply = parse_register_reply(body)
        assert reply["ok"] == 1, reply
        msg_type, _ = read_frame(s)
        assert msg_type == NODE_TABLE  # the full table follows at once
        return s, reply


@pytest.fixture(scope="module")
def setup():
    if quanta.is_initialized():
        quanta.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1}, shutdown_at_exit=False)
    try:
        cluster.add_node(num_cpus=1, resources={"peer_box": 1})
        cluster.connect()
        s = Setup(cluster)
        s.assert_serving()
        yield s
    finally:
        cluster.shutdown()


@pytest.fixture
def serving_after(setup):
    yield setup
    setup.assert_serving()


def both(setup):
    return [setup.control, setup.node]


# ----------------------------------------------------------------------------- before the handshake


@pytest.mark.parametrize("target", ["control", "node"])
def test_garbage_bytes(serving_after, target):
    d = getattr(serving_after, target)
    mark = d.log_mark()
    with d.connect() as s:
        send_tolerant(s, os.urandom(37) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(500))
        assert wait_closed_by_peer(s)
    d.wait_log("not a Quanta handshake (bad magic bytes)", mark)


@pytest.mark.parametrize("target", ["control", "node"])
def test_bad_magic_with_a_valid_structure(serving_after, target):
    d = getattr(serving_after, target)
    mark = d.log_mark()
    with d.connect() as s:
        s.sendall(hello_msg(CH_CONTROL if target == "control" else CH_PEER, os.urandom(32), magic=b"RAY!"))
        assert wait_closed_by_peer(s)
    d.wait_log("bad magic bytes", mark)


@pytest.mark.parametrize("target", ["control", "node"])
def test_unknown_channel(serving_after, target):
    d = getattr(serving_after, target)
    mark = d.log_mark()
    with d.connect() as s:
        s.sendall(hello_msg(9, os.urandom(32)))
        assert wait_closed_by_peer(s)
    d.wait_log("unknown channel 9", mark)


@pytest.mark.parametrize("target", ["control", "node"])
@pytest.mark.parametrize("cut", [1, 20, 43, 44 + 16])
def test_truncated_handshake_then_close(serving_after, target, cut):
    d = getattr(serving_after, target)
    mark = d.log_mark()
    s = d.connect()
    nonce = os.urandom(32)
    msg = hello_msg(CH_TOOL if target == "control" else CH_PEER, nonce)
    if cut <= 44:
        s.sendall(msg[:cut])
    else:  # a whole Hello, the Challenge read, then half a Proof
        s.sendall(msg)
        recv_exact(s, 76)
        s.sendall(os.urandom(cut - 44))
    s.close()
    d.wait_log("closed the connection during the handshake", mark)


@pytest.mark.parametrize("target", ["control", "node"])
def test_wrong_hmac_is_refused(serving_after, target):
    d = getattr(serving_after, target)
    channel = CH_CONTROL if target == "control" else CH_PEER
    mark = d.log_mark()
    with d.connect() as s:
        nonce_c = os.urandom(32)
        s.sendall(hello_msg(channel, nonce_c))
        ch = parse_challenge(recv_exact(s, 76))
        assert ch["version"] == PROTOCOL_VERSION
        # A well-formed proof made with another token.
        s.sendall(mac("not-the-cluster-token-0123456789", b"quanta client", channel, ch["nonce"], nonce_c))
        assert recv_exact(s, 4)[0] == 2  # Welcome: wrong token
        assert wait_closed_by_peer(s)
    d.wait_log("the peer does not hold the cluster token (wrong token)", mark)


def test_replayed_proof_is_refused(serving_after):
    """A proof recorded from one handshake does not open another (fresh server nonce)."""
    setup = serving_after
    d = setup.control
    nonce_c = os.urandom(32)
    with d.connect() as s:
        s.sendall(hello_msg(CH_TOOL, nonce_c))
        ch = parse_challenge(recv_exact(s, 76))
        recorded = mac(setup.token, b"quanta client", CH_TOOL, ch["nonce"], nonce_c)
        s.sendall(recorded)
        assert recv_exact(s, 4)[0] == 1
    mark = d.log_mark()
    with d.connect() as s:
        s.sendall(hello_msg(CH_TOOL, nonce_c))  # the same client nonce...
        ch2 = parse_challenge(recv_exact(s, 76))
        assert ch2["nonce"] != ch["nonce"]
        s.sendall(recorded)  # ...and the recorded proof
        assert recv_exact(s, 4)[0] == 2
    d.wait_log("wrong token", mark)


def test_proof_for_another_channel_is_refused(serving_after):
    setup = serving_after
    d = setup.control
    mark = d.log_mark()
    with d.connect() as s:
        nonce_c = os.urandom(32)
        s.sendall(hello_msg(CH_TOOL, nonce_c))
        ch = parse_challenge(recv_exact(s, 76))
        s.sendall(mac(setup.token, b"quanta client", CH_CONTROL, ch["nonce"], nonce_c))
        assert recv_exact(s, 4)[0] == 2
    d.wait_log("wrong token", mark)


def test_channels_a_daemon_does_not_serve(serving_after):
    setup = serving_after
    mark = setup.control.log_mark()
    s = setup.handshake(setup.control, CH_PEER)
    assert wait_closed_by_peer(s)
    s.close()
    setup.control.wait_log("the control service serves control and tool channels only", mark)
    mark = setup.node.log_mark()
    for channel in (CH_CONTROL, CH_TOOL):
        s = setup.handshake(setup.node, channel)
        assert wait_closed_by_peer(s)
        s.close()
    setup.node.wait_log("a node serves peer, data and lane channels only", mark)


def test_a_slow_handshake_is_not_cut_short_by_an_earlier_connections_deadline(serving_after):
    """Connection A authenticates and closes; B, accepted ~5 s later on the same fd (its
    Handshake possibly at the same address), takes a while to send its proof, well within its
    own 5 s. A's handshake deadline firing must not close B (it did: the timer named its
    handshake by fd and pointer, both reused)."""
    setup = serving_after
    a = setup.handshake(setup.control, CH_TOOL)
    t0 = time.monotonic()
    a.close()
    time.sleep(max(0.0, 4.8 - (time.monotonic() - t0)))
    mark = setup.control.log_mark()
    with setup.control.connect() as b:
        nonce_c = os.urandom(32)
        b.sendall(hello_msg(CH_TOOL, nonce_c))
        ch = parse_challenge(recv_exact(b, 76))
        time.sleep(0.5)
        send_tolerant(b, mac(setup.token, b"quanta client", CH_TOOL, ch["nonce"], nonce_c))
        try:
            welcome = recv_exact(b, 4)
        except ConnectionError:
            welcome = None
    assert welcome == b"\x01\x00\x00\x00", "the head closed a handshake 0.7 s into its 5 s:\n" + \
        setup.control.log_text()[mark:]


# ----------------------------------------------------------------------------- protocol versions


def test_python_client_negotiates_the_common_version(serving_after):
    setup = serving_after
    v = PROTOCOL_VERSION
    for lo, hi in ((1, v + 3), (v, v), (0, v), (v, 60000)):
        with setup.control.connect() as s:
            s.sendall(hello_msg(CH_TOOL, os.urandom(32), lo, hi))
            ch = parse_challenge(recv_exact(s, 76))
            assert (ch["version"], ch["min"], ch["max"]) == (PROTOCOL_VERSION, PROTOCOL_VERSION, PROTOCOL_VERSION)


@pytest.mark.parametrize("target", ["control", "node"])
def test_node_offering_other_versions_is_refused_naming_both(serving_after, target):
    d = getattr(serving_after, target)
    mark = d.log_mark()
    with d.connect() as s:
        s.sendall(hello_msg(CH_CONTROL if target == "control" else CH_PEER, os.urandom(32), PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 3))
        ch = parse_challenge(recv_exact(s, 76))
        # Refused before authentication: version 0, the server's own range, and no proof.
        assert ch["magic"] == MAGIC
        assert (ch["version"], ch["min"], ch["max"]) == (0, PROTOCOL_VERSION, PROTOCOL_VERSION)
        assert ch["mac"] == bytes(32)
        assert wait_closed_by_peer(s)
    line = d.wait_log("protocol version mismatch", mark)
    assert f"{PROTOCOL_VERSION + 1}-{PROTOCOL_VERSION + 3}" in line and f"{PROTOCOL_VERSION}-{PROTOCOL_VERSION}" in line, line


class FakeHead:
    """A Python server on a TCP port that answers every Hello with a chosen Challenge."""

    def __init__(self, token, version, lo, hi):
        self.token, self.version, self.lo, self.hi = token, version, lo, hi
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.hellos = []
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.listener.settimeout(0.2)
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(5)
                    hello = recv_exact(conn, 44)
                    self.hellos.append(hello)
                    nonce_c, channel = hello[12:44], hello[8]
                    conn.sendall(challenge_msg(self.token, channel, nonce_c, os.urandom(32), self.version,
                                               self.lo, self.hi))
                    proof = conn.recv(32)
                    if proof:  # a client that went on: welcome it (it must not get this far)
                        conn.sendall(b"\x01\x00\x00\x00")
                        time.sleep(1)
                except (OSError, ConnectionError):
                    pass

    def close(self):
        self.stopped = True
        self.listener.close()
        self.thread.join(5)


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION + 1], ids=["refusal", "a-version-we-do-not-speak"])
def test_fake_head_with_another_version_makes_join_fail_naming_both(setup, version):
    fake = FakeHead(setup.token, version, PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 3)
    root = tempfile.mkdtemp(prefix="qfh-")
    env = {k: v for k, v in os.environ.items() if k != "QUANTA_ADDRESS"}
    env.update(QUANTA_AUTH_TOKEN=setup.token, QUANTA_RUNTIME_DIR=os.path.join(root, "rt"), HOME=root)
    try:
        r = subprocess.run([sys.executable, "-m", "quanta.scripts", "start", "--address", f"127.0.0.1:{fake.port}",
                            "--num-cpus", "0"], capture_output=True, text=True, timeout=60, env=env)
    finally:
        fake.close()
        shutil.rmtree(root, ignore_errors=True)
    assert r.returncode != 0, r.stdout
    assert "protocol version mismatch" in r.stderr, r.stderr
    assert f"{PROTOCOL_VERSION + 1}-{PROTOCOL_VERSION + 3}" in r.stderr, r.stderr
    assert f"{PROTOCOL_VERSION}-{PROTOCOL_VERSION}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert fake.hellos, "the node never connected"
    lo, hi = struct.unpack_from("<HH", fake.hellos[0], 4)
    assert (lo, hi) == (PROTOCOL_VERSION, PROTOCOL_VERSION)


# ----------------------------------------------------------------------------- after the handshake


def test_python_tool_client_reads_the_node_table(serving_after):
    setup = serving_after
    with setup.handshake(setup.control, CH_TOOL) as s:
        s.sendall(frame(GET_CLUSTER_INFO, struct.pack("<Q", 77)))
        msg_type, body = read_frame(s)
        assert msg_type == CLUSTER_INFO
        request_id, nodes = parse_cluster_info(body)
    assert request_id == 77
    by_id = {n["node_id"]: n for n in nodes if n["alive"]}
    assert {setup.cluster.head_node.node_id, setup.cluster.worker_nodes[0].node_id} <= set(by_id)
    total = by_id[setup.cluster.worker_nodes[0].node_id]["total"]
    assert {k: v for k, v in total.items() if k not in ("memory", "object_store_memory")} == {"CPU": 1.0,
                                                                                               "peer_box": 1.0}
    assert total["memory"] > 0 and total["object_store_memory"] > 0  # every node advertises both
    assert by_id[setup.cluster.worker_nodes[0].node_id]["port"] == setup.node.port


BAD_FRAMES = {
    # name: (channel, bytes, what the log says)
    "wrong-frame-version": (CH_TOOL, frame(GET_CLUSTER_INFO, struct.pack("<Q", 1), version=PROTOCOL_VERSION + 1),
                            f"frame has protocol version {PROTOCOL_VERSION + 1}, expected {PROTOCOL_VERSION}"),
    "huge-length": (CH_TOOL, frame(GET_CLUSTER_INFO, length=0xFFFFFFF0),
                    f"exceeds the limit of {MAX_FRAME_BEFORE_REGISTER}"),
    "over-limit-before-register": (CH_CONTROL, frame(REGISTER_NODE, length=MAX_FRAME_BEFORE_REGISTER + 1),
                                   f"exceeds the limit of {MAX_FRAME_BEFORE_REGISTER}"),
    "tool-writes": (CH_TOOL, frame(REGISTER_NODE, node_info("aa" * 16)), "a tool connection may only read"),
    "unknown-type": (CH_CONTROL, frame(999), "unexpected message type 999"),
    "truncated-body": (CH_TOOL, frame(GET_CLUSTER_INFO, b"\x01\x02\x03"), "truncated message"),
    "trailing-bytes": (CH_TOOL, frame(GET_CLUSTER_INFO, struct.pack("<Q", 1) + b"zz"), "unexpected trailing bytes"),
    "garbage-register": (CH_CONTROL, frame(REGISTER_NODE, os.urandom(64)), "rejecting RegisterNode"),
    "forged-count": (CH_CONTROL, frame(REGISTER_NODE, wire_bytes("ab" * 16) + struct.pack("<I", 0)
                                       + struct.pack("<I", 0xFFFFFFF0)), "rejecting RegisterNode"),
    "heartbeat-first": (CH_CONTROL, frame(HEARTBEAT, struct.pack("<IQ", 1, 1)), "heartbeat before registration"),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_malformed_frames_after_a_correct_handshake_on_the_control_port(serving_after, case):
    setup = serving_after
    channel, data, message = BAD_FRAMES[case]
    mark = setup.control.log_mark()
    s = setup.handshake(setup.control, channel)
    send_tolerant(s, data)
    assert wait_closed_by_peer(s)
    s.close()
    setup.control.wait_log(message, mark)
    assert sum(n["alive"] for n in _core.query_cluster(setup.cluster.address, 5000)) == 2  # no ghost node


@pytest.mark.parametrize("case", ["not-hello-first", "other-cluster", "unknown-node", "over-limit", "bad-version"])
def test_malformed_frames_on_a_node_peer_channel(serving_after, case):
    setup = serving_after
    data, message = {
        "not-hello-first": (frame(FORWARD_TASK, os.urandom(40)), "the first frame on a peer channel must be PeerHello"),
        "other-cluster": (frame(PEER_HELLO, struct.pack("<IQQ", 1, 1, 0xDEADBEEF)), "a node of another cluster"),
        "unknown-node": (frame(PEER_HELLO, struct.pack("<IQQ", 0, 1, 0)), "a node of another cluster"),
        "over-limit": (frame(PEER_HELLO, length=MAX_FRAME_BEFORE_PEER_HELLO + 1),
                       f"exceeds the limit of {MAX_FRAME_BEFORE_PEER_HELLO}"),
        "bad-version": (frame(PEER_HELLO, struct.pack("<IQQ", 1, 1, 0), version=1), "frame has protocol version 1"),
    }[case]
    mark = setup.node.log_mark()
    s = setup.handshake(setup.node, CH_PEER)
    send_tolerant(s, data)
    assert wait_closed_by_peer(s)
    s.close()
    setup.node.wait_log(message, mark)


def test_truncated_frames_hold_no_memory_and_break_nothing(serving_after):
    """Frames cut short (a header announcing a large body, a few bytes of it) on open
    connections: the daemon waits without allocating the announced body."""
    setup = serving_after
    before = rss_kib(setup.control.pid)
    socks = []
    for _ in range(50):
        s = setup.handshake(setup.control, CH_TOOL)
        s.sendall(frame(GET_CLUSTER_INFO, length=MAX_FRAME_BEFORE_REGISTER)[:8] + b"x" * 10)
        socks.append(s)
    setup.assert_serving()
    grown = rss_kib(setup.control.pid) - before
    for s in socks:
        s.close()
    assert grown < 16 * 1024, f"50 truncated 64 KiB frames grew the control service by {grown} KiB"


def test_fake_node_registers_over_tcp_and_its_death_is_noticed(serving_after):
    """A Python node that speaks the protocol correctly is a member like any other: listed, its
    PeerHello accepted by a real node; when its connection closes it is dead at once."""
    setup = serving_after
    s, reply = setup.register_fake_node(resources={"CPU": 0})
    try:
        assert reply["index"] >= 3 and reply["cluster_id"] != 0
        listed = {n["node_index"]: n for n in _core.query_cluster(setup.cluster.address, 5000)}
        assert listed[reply["index"]]["alive"]
        # Its PeerHello opens a peer channel to the real node, which keeps it open.
        p = setup.handshake(setup.node, CH_PEER)
        p.sendall(frame(PEER_HELLO, struct.pack("<IQQ", reply["index"], reply["incarnation"], reply["cluster_id"])))
        # A malformed message on an accepted channel is logged and dropped.
        mark = setup.node.log_mark()
        p.sendall(frame(FORWARD_TASK, b"\x00" * 20))
        setup.node.wait_log(f"rejecting ForwardTask from node {reply['index']}", mark)
        p.close()
    finally:
        s.close()
    mark = setup.control.log_mark()
    setup.control.wait_log(f"(index {reply['index']}) declared dead: its connection to the control service closed",
                           0)
    assert not {n["node_index"]: n for n in _core.query_cluster(setup.cluster.address, 5000)}[reply["index"]]["alive"]


# ----------------------------------------------------------------------------- peers that never read


def test_tool_client_that_never_reads_its_replies_keeps_the_head_bounded(serving_after, record_property):
    """Authenticated, then asks for the node table as fast as it can without ever reading.
    The control service stops reading from it once its replies pile up (64 MiB), so its
    memory stays bounded, and it serves everyone else meanwhile."""
    setup = serving_after
    pid = setup.control.pid
    before = rss_kib(pid)
    s = setup.handshake(setup.control, CH_TOOL)
    s.setblocking(False)
    request = frame(GET_CLUSTER_INFO, struct.pack("<Q", 5))
    burst = request * 4096
    sent = 0
    stalled_since = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            n = s.send(burst)
            sent += n
            stalled_since = None
        except BlockingIOError:
            # The head stopped reading from us: our send buffer and its receive buffer are full.
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 2.0:
                break
            time.sleep(0.02)
    peak = rss_kib(pid)
    requests = sent // len(request)
    assert stalled_since is not None, f"the head kept reading {sent} bytes of requests from a client that never reads"
    # It is still serving everyone else while that client sits there.
    setup.assert_serving()
    s.close()
    time.sleep(0.5)
    after = rss_kib(pid)
    record_property("head_rss_kib", {"before": before, "peak": peak, "after_close": after, "requests": requests})
    print(f"\nslow tool client: {requests} requests sent; control RSS {before} -> {peak} KiB (after close {after})")
    reply_size = 8 + len(frame(CLUSTER_INFO)) + 2 * 300
    assert requests * reply_size > 64 * MiB, "not enough requests to reach the soft limit; the test proves nothing"
    assert peak - before < 160 * 1024, f"control service RSS grew by {(peak - before) // 1024} MiB"


def test_fake_node_that_never_reads_its_peer_channel(serving_after, record_property):
    """A Python node registers with a resource and a peer port; the driver's tasks for that
    resource are forwarded to it by the head's node, over a channel it accepts (it completes
    the server side of the handshake) and then never reads. The sending node keeps serving; its
    memory grows only by what was queued for that peer, and is given back when the peer dies."""
    setup = serving_after
    token = setup.token
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept_one():
        server.settimeout(30)
        try:
            conn, _ = server.accept()
        except OSError:
            return
        conn.settimeout(10)
        hello = recv_exact(conn, 44)
        nonce_c, channel = hello[12:44], hello[8]
        nonce_s = os.urandom(32)
        conn.sendall(challenge_msg(token, channel, nonce_c, nonce_s))
        proof = recv_exact(conn, 32)
        assert hmac.compare_digest(proof, mac(token, b"quanta client", channel, nonce_s, nonce_c))
        conn.sendall(b"\x01\x00\x00\x00")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        accepted.append((conn, channel))  # and never read from it again

    t = threading.Thread(target=accept_one, daemon=True)
    t.start()
    ctl, reply = setup.register_fake_node(port=server.getsockname()[1], resources={"CPU": 1000, "sink": 1000})
    pid = setup.head_node_pid
    before = rss_kib(pid)
    payload = b"x" * (64 * 1024)  # inline (under the 100 KiB threshold): travels in ForwardTask

    @quanta.remote(resources={"sink": 1})
    def sink(data):
        return len(data)

    refs = [sink.remote(payload) for _ in range(400)]  # ~25 MiB for a peer that never reads
    try:
        t.join(30)
        assert accepted and accepted[0][1] == CH_PEER, "the head's node never opened its channel to the fake node"
        stats = lambda: quanta._private.api.node_stats()  # noqa: E731
        deadline = time.monotonic() + 30
        while stats()["peer_bytes_sent"] < 400 * len(payload) and time.monotonic() < deadline:
            time.sleep(0.1)
        queued = stats()["peer_bytes_sent"]
        peak = rss_kib(pid)
        setup.assert_serving()  # the node keeps serving its driver
    finally:
        ctl.close()  # the fake node dies: its channel is dropped
        for conn, _ in accepted:
            conn.close()
        server.close()
    setup.control.wait_log(f"(index {reply['index']}) declared dead", 0)
    time.sleep(1.0)
    after = rss_kib(pid)
    record_property("node_rss_kib", {"before": before, "peak": peak, "after": after, "queued_bytes": queued})
    print(f"\nnon-reading peer: {queued >> 20} MiB queued; head node RSS {before} -> {peak} KiB, "
          f"{after} KiB after the peer died")
    assert queued >= 400 * len(payload)
    queued_kib = queued >> 10
    # Bounded by what was queued (the task specs it owns plus the channel's output buffer).
    assert peak - before < 3 * queued_kib + 32 * 1024, "the node used far more memory than it queued"
    # The dead peer's output buffer is given back. (The 400 task specs stay: tasks forwarded to
    # a node that dies are not failed over yet, see test_cluster.py's xfail tests.)
    assert after < peak - queued_kib // 2, "the output queued for a dead peer was not given back"
    for r in refs:
        quanta.cancel(r)


# ----------------------------------------------------------------------------- many idle connections


@pytest.mark.slow
def test_thousands_of_idle_connections_that_never_handshake(serving_after, record_property):
    setup = serving_after
    want = 3000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 1000), hard))
    pid = setup.control.pid
    time.sleep(0.2)  # let the previous connections close
    rss_before, fds_before = rss_kib(pid), num_fds(pid)
    mark = setup.control.log_mark()
    socks = []
    t0 = time.monotonic()
    try:
        for i in range(want):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", setup.control.port))
            socks.append(s)
            if i % 10 == 0:
                s.send(hello_msg(CH_TOOL, os.urandom(32))[:10])  # some start a Hello and stop
        # The head accepts them all (each costs a fixed buffer) and still serves a driver.
        deadline = time.monotonic() + 4
        fds_peak = 0
        while fds_peak < fds_before + want - 2 and time.monotonic() < deadline:
            fds_peak = max(fds_peak, num_fds(pid))
            time.sleep(0.05)
        rss_peak = rss_kib(pid)
        accepted_after = time.monotonic() - t0
        assert fds_peak >= fds_before + want - 2, f"the head holds only {fds_peak - fds_before} of {want}"
        setup.assert_serving()
        # ...and closes them once their 5 s handshake deadline passes.
        open_socks = {s.fileno(): s for s in socks}
        poller = select.poll()
        for fd in open_socks:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        closed = 0
        deadline = time.monotonic() + 20
        while closed < want and time.monotonic() < deadline:
            for fd, _ in poller.poll(200):
                try:
                    data = open_socks[fd].recv(100)
                except OSError:
                    data = b""
                if not data:
                    poller.unregister(fd)
                    closed += 1
        all_closed_after = time.monotonic() - t0
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    rss_after, fds_after = rss_kib(pid), num_fds(pid)
    numbers = {"connections": want, "rss_kib_before": rss_before, "rss_kib_peak": rss_peak, "rss_kib_after": rss_after,
               "fds_before": fds_before, "fds_peak": fds_peak, "fds_after": fds_after,
               "accepted_s": round(accepted_after, 2), "all_closed_s": round(all_closed_after, 2)}
    record_property("idle_connections", numbers)
    print(f"\nidle connections: {numbers}")
    assert closed == want, f"only {closed} of {want} idle connections were closed by the head"
    assert all_closed_after > 4.0, "closed before the 5 s handshake deadline"
    assert rss_peak - rss_before < 32 * 1024, f"{want} idle connections cost {rss_peak - rss_before} KiB"
    assert fds_after <= fds_before + 5
    # Each one was closed for its deadline, and said so.
    with open(setup.control.log, errors="replace") as fh:
        fh.seek(mark)
        timed_out = sum(1 for line in fh if "refused a connection from 127.0.0.1" in line
                        and "the handshake did not complete within 5000 ms" in line)
    assert timed_out == want, f"{timed_out} of {want} idle connections were logged as timed out"
    setup.assert_serving()


# ----------------------------------------------------------------------------- actor lanes
# A lane is a socket a caller's node opens to an actor's node for the actor's worker
# (docs/cluster-design.md §8). It needs the token like any channel; after the handshake the node
# reads exactly a 24-byte LaneHello and hands the socket over only to the worker of a live actor.


def lane_hello(actor_id, caller_node, magic=b"QLAN"):
    return magic + actor_id + struct.pack("<I", caller_node)


def test_lane_without_the_token_is_refused(serving_after):
    setup = serving_after
    mark = setup.node.log_mark()
    with setup.node.connect() as s:
        nonce_c = os.urandom(32)
        s.sendall(hello_msg(CH_LANE, nonce_c))
        ch = parse_challenge(recv_exact(s, 76))
        s.sendall(mac("not-the-token-" * 3, b"quanta client", CH_LANE, ch["nonce"], nonce_c))
        assert recv_exact(s, 4)[0] == 2
    setup.node.wait_log("wrong token", mark)


@pytest.mark.parametrize("hello", ["garbage", "nil-actor", "unknown-actor", "silence"])
def test_a_bad_lane_hello_is_closed_and_never_reaches_a_worker(serving_after, hello):
    setup = serving_after
    node = setup.node
    before = num_fds(node.pid)
    s = setup.handshake(node, CH_LANE)
    if hello == "garbage":
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    elif hello == "nil-actor":
        s.sendall(lane_hello(bytes(16), 1))
    elif hello == "unknown-actor":
        s.sendall(lane_hello(os.urandom(16), 1))
    # "silence": nothing at all; the node closes it after 5 s
    assert wait_closed_by_peer(s, timeout=15)
    s.close()
    deadline = time.monotonic() + 5
    while num_fds(node.pid) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert num_fds(node.pid) <= before  # nothing kept for it
    # The node still serves: a good lane handshake still completes.
    setup.handshake(node, CH_LANE).close()
