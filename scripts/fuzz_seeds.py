"""Writes the seed corpora of the libFuzzer targets (src/protocol/fuzz_corpus/{frames,handshake}).

    python3 scripts/fuzz_seeds.py        # rewrites the seeds (they are committed)

FuzzedDataProvider takes integers from the *end* of an input and bytes from its front, so each
frames seed is a valid frame stream followed by the 9 bytes the harness reads as integers (the
frame-size limit to use and the chunking seed); each handshake seed ends with its mode byte.
"""

import hashlib
import hmac
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "protocol", "fuzz_corpus")
V = 2


def frame(t, body=b"", version=V, length=None):
    return struct.pack("<IHH", len(body) if length is None else length, version, t) + body


def b(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack("<I", len(x)) + x


def res(d):
    return struct.pack("<I", len(d)) + b"".join(b(k) + struct.pack("<q", v) for k, v in d.items())


def oid(creator, seq, idx):
    return struct.pack("<QII", creator, seq, idx)


def node_info(i):
    return (b("ab" * 16) + struct.pack("<I", i) + b("10.0.0.%d" % i) + struct.pack("<I", 7000 + i) + b("/s/node.sock")
            + b("/s") + b"\x01" + res({"CPU": 40000, "gpu": 10000}) + res({"CPU": 20000})
            + struct.pack("<I", 1) + b("zone") + b("a") + struct.pack("<QQB", 1, 2, 1) + b(""))


def object_value(kind=0, data=b"\x80\x05K\x01.", nested=()):
    return struct.pack("<B", kind) + b(data) + struct.pack("<I", len(nested)) + b"".join(nested)


def task_spec(creator=1 << 32 | 1):
    return (oid(creator, 1, 0) + b"\x00" + struct.pack("<Q", creator) + b("f" * 40) + b("mod.f") + b(b"\x80\x05.")
            + struct.pack("<I", 1) + oid(creator, 2, 1) + struct.pack("<I", 0) + struct.pack("<I", 1)
            + res({"CPU": 10000}) + struct.pack("<iB", 3, 0))


FRAMES = {
    "hello": frame(1, b"\x01" + b("") + struct.pack("<IB", 1234, 1)),
    "get_cluster_info": frame(11, struct.pack("<Q", 7)),
    "submit_task": frame(3, task_spec()),
    "put_object": frame(4, oid(5, 0, 0) + object_value()),
    "ref_deltas": frame(6, struct.pack("<I", 2) + oid(1, 1, 1) + struct.pack("<i", 1) + oid(1, 2, 1)
                        + struct.pack("<i", -1)),
    "task_done": frame(9, oid(1, 1, 0) + struct.pack("<I", 1) + object_value(6, b"\0" * 17)),
    "register_node": frame(64, node_info(0)),
    "register_node_reply": frame(65, b"\x01" + struct.pack("<IQQII", 3, 99, 4, 500, 3000) + b("")),
    "heartbeat": frame(67, struct.pack("<IQ", 3, 9)),
    "node_table": frame(69, b"\x01" + struct.pack("<I", 2) + node_info(1) + node_info(2)),
    "resource_view": frame(70, struct.pack("<I", 1) + struct.pack("<I", 2) + res({"CPU": 10000})),
    "cluster_info": frame(37, struct.pack("<Q", 7) + struct.pack("<I", 1) + node_info(1)),
    "peer_hello": frame(96, struct.pack("<IQQ", 2, 1, 99)),
    "forward_task": frame(97, task_spec() + struct.pack("<I", 1) + object_value() + b("payload")),
    "task_result": frame(98, oid(1, 1, 0) + struct.pack("<Q", 1) + struct.pack("<I", 1) + object_value()),
    "log_lines": frame(99, struct.pack("<Q", 1 << 32 | 1) + b("10.0.0.2")
                       + struct.pack("<I", 42) + b("f") + b"\x00" + b("hello\n") + b("10.0.0.2")),
    "several": frame(67, struct.pack("<IQ", 3, 9)) + frame(11, struct.pack("<Q", 1)) + frame(8),
    "huge_header": frame(3, length=0xFFFFFFF0),
    "wrong_version": frame(11, struct.pack("<Q", 1), version=3),
    "forged_count": frame(69, b"\x01" + struct.pack("<I", 0x7FFFFFFF)),
}

TOKEN = b"fuzz-cluster-token-0123456789abcdef"


def handshake_seeds():
    nonce = bytes(range(32))
    hello = b"QNTA" + struct.pack("<HHB3x", V, V, 1) + nonce
    mac = hmac.new(TOKEN, b"quanta client" + b"\x01" + bytes(32) + nonce, hashlib.sha256).digest()
    # Raw modes: arbitrary bytes then the integers (from the end): mode, versions, channel.
    return {
        "raw_server_hello": hello + mac + b"\x01\x01\x01\x02\x00",
        "raw_client_challenge": b"QNTA" + struct.pack("<HHHH", V, V, V, 0) + bytes(64) + b"\x01\x00\x00\x00"
                                + b"\x02\x01\x01\x02\x01",
        "cooperative_client": bytes(range(64)) + b"\x02" * 12,
        "cooperative_server": bytes(range(64, 128)) + b"\x03" * 12,
        "raw_garbage": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\x00",
    }


def main():
    for sub, seeds in (("frames", {k: v + bytes(9) for k, v in FRAMES.items()}), ("handshake", handshake_seeds())):
        folder = os.path.join(ROOT, sub)
        os.makedirs(folder, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(folder, name), "wb") as fh:
                fh.write(data)
    print(f"wrote {len(FRAMES)} frame seeds and {len(handshake_seeds())} handshake seeds under {os.path.normpath(ROOT)}")


if __name__ == "__main__":
    main()
