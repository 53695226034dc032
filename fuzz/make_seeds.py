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


# Real shim traffic: answer and request payloads captured (strace of shimctl)
# from containerd-shim-runc-v2 1.6.20 on cgroups v1, 2026-12-04: container c1
# running `sh -c 'echo hi; sleep 60'`, exec e1 `sleep 50`, exec e2 `echo hi`.
SHIM = {
    "state_response": "0a026331120d2f746d702f73656564622f6331189b1c2002320e2f746d702f73656564622f6f75743a0e2f746d702f73656564622f657272520b088092b8c398feffffff01",
    "pids_response": "0a03089b1c0a2e08b71c12290a21636f6e7461696e6572642e72756e632e76312e50726f6365737344657461696c7312040a026531",
    "stats_response": "0adc010a20696f2e636f6e7461696e6572642e6367726f7570732e76312e4d65747269637312b701120208021a180a1408c3b09b081080ade204220899dfb805aad1e20212002292011080c00638cc0440b20448c40758808006608040800180e0ffffffffffff7f880180e0ffffffffffff7f980180c006c001cc04c801b204d001c407e001808006e80180408a02130880e0ffffffffffff7f1080e022188080a9019202130880e0ffffffffffff7f1080e022188080a9019a02120880e0ffffffffffff7f1080e01218808027a2020a0880e0ffffffffffff7f2a004a00",
    "connect_response": "08bef701109b1c",
    "exec_request": "0a026331120265322a0e2f746d702f73656564622f6f7574320e2f746d702f73656564622f6572723acb040a3974797065732e636f6e7461696e6572642e696f2f6f70656e636f6e7461696e6572732f72756e74696d652d737065632f312f50726f63657373128d047b227465726d696e616c223a66616c73652c2275736572223a7b22756964223a302c22676964223a307d2c2261726773223a5b226563686f222c226869225d2c22656e76223a5b22504154483d2f7573722f6c6f63616c2f7362696e3a2f7573722f6c6f63616c2f62696e3a2f7573722f7362696e3a2f7573722f62696e3a2f7362696e3a2f62696e222c225445524d3d787465726d225d2c22637764223a222f222c226361706162696c6974696573223a7b22626f756e64696e67223a5b224341505f41554449545f5752495445222c224341505f4b494c4c222c224341505f4e45545f42494e445f53455256494345225d2c22656666656374697665223a5b224341505f41554449545f5752495445222c224341505f4b494c4c222c224341505f4e45545f42494e445f53455256494345225d2c227065726d6974746564223a5b224341505f41554449545f5752495445222c224341505f4b494c4c222c224341505f4e45545f42494e445f53455256494345225d2c22616d6269656e74223a5b224341505f41554449545f5752495445222c224341505f4b494c4c222c224341505f4e45545f42494e445f53455256494345225d7d2c22726c696d697473223a5b7b2274797065223a22524c494d49545f4e4f46494c45222c2268617264223a313032342c22736f6674223a313032347d5d2c226e6f4e657750726976696c65676573223a747275657d",
    "start_request": "0a02633112026532",
    "start_response": "08dd23",
    "wait_response": "120c08cfb8ccd80610d49d8ff901",
}

# shim_messages' case numbers (byte 0), in the order of CHECKED then DECODE
# in src/shim_messages.rs.
SHIM_CASES = {
    "print_state": 0, "print_pids": 1, "print_stats": 2, "print_connect": 3,
    "print_v1_state": 4, "print_v1_list_pids": 5, "any_process_details": 6,
    "any_cgroups_v1": 7, "any_cgroups_v2": 8, "process_spec": 9,
    "exec_request": 10 + 4, "start_request": 10 + 15, "start_response": 10 + 16,
    "wait_response": 10 + 18, "v1_exec_request": 10 + 30,
}


def pb_fields(data):
    """(field number, wire type, value) of a protobuf message, top level."""
    out, i = [], 0
    def varint():
        nonlocal i
        v = s = 0
        while True:
            c = data[i]; i += 1; v |= (c & 0x7F) << s; s += 7
            if c < 0x80:
                return v
    while i < len(data):
        key = varint()
        if key & 7 == 2:
            n = varint(); out.append((key >> 3, 2, data[i:i + n])); i += n
        else:
            out.append((key >> 3, 0, varint()))
    return out


def field(data, number):
    return next(v for f, _, v in pb_fields(data) if f == number)


def pb(*fields):
    """Encodes (number, value) pairs: int as varint, bytes/str/list as length-delimited."""
    def varint(v):
        b = bytearray()
        while v >= 0x80:
            b.append(v & 0x7F | 0x80); v >>= 7
        b.append(v)
        return bytes(b)
    out = b""
    for n, v in fields:
        if isinstance(v, int):
            out += varint(n << 3) + varint(v)
        else:
            v = v.encode() if isinstance(v, str) else v
            out += varint(n << 3 | 2) + varint(len(v)) + v
    return out


def shim_seeds():
    m = {k: bytes.fromhex(v) for k, v in SHIM.items()}
    processes = [v for f, _, v in pb_fields(m["pids_response"]) if f == 1]
    details = field(field(processes[1], 2), 2)
    v1_metrics = field(field(m["stats_response"], 1), 2)
    spec = field(field(m["exec_request"], 7), 2)
    # cgroups v2 (this host is v1): the shape runc's shim answers with.
    psi = pb((1, pb((4, 7))), (2, pb()))
    v2_metrics = pb(
        (1, pb((1, 2), (2, 4096))),
        (2, pb((1, 17225), (2, 10000), (3, 7225), (7, psi))),
        (4, pb((1, 102400), (2, 8192), (32, 110592), (33, 2**63 - 4096))),
        (6, pb((1, pb((1, 8), (2, 0), (3, 4096), (5, 1))))),
    )
    out = {
        "print_state": m["state_response"],
        "print_pids": m["pids_response"],
        "print_stats": m["stats_response"],
        "print_connect": m["connect_response"],
        "print_v1_state": m["state_response"],  # v1's fields 1-10 are v2's
        "print_v1_list_pids": m["pids_response"],
        "any_process_details": details,
        "any_cgroups_v1": v1_metrics,
        "any_cgroups_v2": v2_metrics,
        "process_spec": spec,
        "exec_request": m["exec_request"],
        "start_request": m["start_request"],
        "start_response": m["start_response"],
        "wait_response": m["wait_response"],
        "v1_exec_request": pb((1, "e2"), (6, field(m["exec_request"], 7))),
    }
    return {name: bytes([SHIM_CASES[name]]) + data for name, data in out.items()}


def write(target, name, data):
    assert len(data) < 4096, (target, name, len(data))
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def main():
    # Seeds are overwritten, never deleted: hand-made ones (the stream
    # seeds of conn_ops and client_input) live beside these.
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

    # shim_messages: a case byte, then a message (real shim traffic).
    for name, data in shim_seeds().items():
        write("shim_messages", name, data)

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
