#!/usr/bin/env python3
"""Regenerates the checked-in seed corpora (fuzz/corpus/<target>/seed-*).

Minimised crash inputs kept as regressions are named regress-* and are left
alone.

Seeds are built from the real Go ttrpc frames in core/tests/golden/frames,
alone and concatenated into streams (with stream ids rewritten so a stream
of requests is valid), plus a few hand-made edge cases. Run from anywhere:
    python3 fuzz/make_seeds.py
Every file stays well under 4 KiB. conn_ops takes `arbitrary`-structured
input, so its seeds are just a few byte patterns.
"""

import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent
GOLDEN = ROOT.parent / "core" / "tests" / "golden" / "frames"
CORPUS = ROOT / "corpus"


def golden(name):
    return (GOLDEN / f"{name}.bin").read_bytes()


def with_id(frame, sid):
    return frame[:4] + struct.pack(">I", sid) + frame[8:]


def header(length, sid, kind, flags=0):
    return struct.pack(">IIBB", length, sid, kind, flags)


REQUESTS = ["request_empty", "request_payload", "request_metadata", "request_timeout", "request_second_call"]
RESPONSES = [p.stem for p in sorted(GOLDEN.glob("response_*.bin"))]


def request_stream(names, first=1):
    return b"".join(with_id(golden(n), first + 2 * i) for i, n in enumerate(names))


def streams():
    """Raw client-to-server byte streams, named."""
    out = {}
    for n in REQUESTS:
        out[n] = golden(n)
    out["requests_all"] = request_stream(REQUESTS)
    out["requests_repeat"] = request_stream(REQUESTS * 4)
    out["request_reused_id"] = golden("request_empty") + golden("request_payload")
    out["request_even_id"] = with_id(golden("request_empty"), 2)
    out["request_zero_id"] = with_id(golden("request_empty"), 0)
    out["request_truncated"] = request_stream(REQUESTS)[:-7]
    out["request_header_only"] = golden("request_payload")[:10]
    out["request_oversized"] = header(70000, 1, 1) + b"\x0a\x01s" * 20 + golden("request_second_call")
    out["request_huge_len"] = header(0xFFFFFFFF, 1, 1) + b"\x00" * 64
    out["request_undecodable"] = header(4, 1, 1) + b"\xff\xff\xff\xff" + with_id(golden("request_empty"), 3)
    out["data_unknown_stream"] = header(3, 1, 3, 1) + b"abc" + golden("request_empty")
    out["data_open_stream"] = golden("request_empty") + header(0, 1, 3, 5)
    out["response_from_client"] = with_id(golden("response_payload"), 1) + with_id(golden("request_empty"), 3)
    out["unknown_type"] = header(5, 1, 9) + b"hello" + golden("request_empty")
    out["negative_timeout"] = header(14, 1, 1) + b"\x0a\x01s\x20" + b"\xff" * 9 + b"\x01"
    out["metadata_not_utf8"] = header(5, 1, 1) + b"\x2a\x03\x0a\x01\xff" + with_id(golden("request_metadata"), 3)
    return out


def write(target, name, data):
    assert len(data) < 4096, (target, name, len(data))
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def main():
    if CORPUS.exists():
        for d in CORPUS.iterdir():
            for f in d.glob("seed-*"):
                f.unlink()
    s = streams()

    # frame_decoder: a chunking byte, then any stream (requests and responses).
    sels = [0x00, 0x03, 0x45, 0x89, 0xC0, 0xFF]
    for i, (name, data) in enumerate(s.items()):
        write("frame_decoder", name, bytes([sels[i % len(sels)]]) + data)
    responses = b"".join(golden(n) for n in RESPONSES)
    write("frame_decoder", "responses_all", b"\x07" + responses)
    write("frame_decoder", "oversized_then_frames", b"\x41" + header(20, 1, 2) + b"x" * 20 + responses[:200])

    # server_input: limits byte, timeout byte, two seed bytes, then the stream.
    heads = [
        bytes([0x00, 0, 1, 2]),  # 256 B frames, 1 in flight, 64 B tx, no timeout
        bytes([0x1F, 0, 3, 4]),  # 64 KiB frames, 8 in flight, 64 B tx
        bytes([0xE3, 20, 5, 6]),  # 64 KiB frames, 1 MiB tx, 20 ms partial timeout
        bytes([0x8D, 0, 7, 8]),  # zero partial timeout
        bytes([0x6A, 200, 9, 10]),
    ]
    for i, (name, data) in enumerate(s.items()):
        write("server_input", name, heads[i % len(heads)] + data)

    # client_input: config byte, two seed bytes, calls, then the server's bytes.
    def call(service, method, payload_len, timeout, metadata=False):
        plen = payload_len | (0x8000 if metadata else 0)
        return bytes([len(service) | (len(method) << 4)]) + service + method + struct.pack(">HB", plen, timeout)

    calls3 = bytes([3]) + call(b"svc.Test", b"Empty", 0, 0) + call(b"svc.Test", b"Pay", 16, 40) + call(b"a", b"", 300, 1, True)
    responses_ids = b"".join(with_id(golden(n), 1 + 2 * (i % 3)) for i, n in enumerate(RESPONSES))
    write("client_input", "three_calls_responses", bytes([0x0F, 1, 2]) + calls3 + responses_ids)
    for i, n in enumerate(RESPONSES):
        head = bytes([0x03 | (i & 0x0C), i, 7])
        write("client_input", n, head + bytes([1]) + call(b"svc.Test", b"Empty", 0, 0) + golden(n))
    near_max = with_id(golden("response_payload"), 0xFFFFFFFD) + with_id(golden("response_empty_success"), 0xFFFFFFFF)
    write("client_input", "ids_near_max", bytes([0x33, 5, 5]) + bytes([4]) + call(b"s", b"m", 0, 0) * 4 + near_max)
    write("client_input", "deadlines", bytes([0x0F, 9, 9]) + bytes([5]) + b"".join(call(b"s", b"m", 8, t) for t in [2, 1, 255, 150, 0]) + responses_ids[:100])
    write("client_input", "oversized_response", bytes([0x00, 3, 3]) + bytes([1]) + call(b"s", b"m", 0, 0) + header(5000, 1, 2) + b"\x00" * 300)
    write("client_input", "request_frames_back", bytes([0x0F, 4, 4]) + bytes([2]) + call(b"s", b"m", 0, 0) * 2 + request_stream(REQUESTS[:2]))

    # conn_ops: arbitrary-structured; a few byte patterns to start from.
    for name, data in {
        "zeros": b"\x00" * 64,
        "ones": b"\x01" * 128,
        "ramp": bytes(range(256)),
        "mixed": bytes((i * 37 + 11) & 0xFF for i in range(512)),
    }.items():
        write("conn_ops", name, data)


if __name__ == "__main__":
    main()
