#!/usr/bin/env python3
"""Conformance checks of an Agadir node against docs/protocol.md.

usage: conformance.py HOST:PORT
Prints one line per check and a final line "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import hashlib
import json
import os
import select
import socket
import struct
import sys
import time

import agadir_client as ac

MiB = 1024 * 1024

# Hex dumps copied from the "A full exchange" section of docs/protocol.md.
DOC_PUT_REQUEST = """
0000  41 47 44 52 01 01 00 01 00 05 00 00 00 00 00 2f  AGDR.........../
0010  00 00 00 00 00 00 00 01 00 00 00 05 00 00 00 00  ................
0020  00 04 00 01 00 06 70 68 6f 74 6f 73 00 02 00 05  ......photos....
0030  61 2e 74 78 74 00 05 00 08 00 00 00 00 00 00 00  a.txt...........
0040  05 00 03 00 0a 74 65 78 74 2f 70 6c 61 69 6e 68  .....text/plainh
0050  65 6c 6c 6f                                      ello
"""

DOC_GET_REQUEST = """
0000  41 47 44 52 01 01 00 01 00 06 00 00 00 00 00 15  AGDR............
0010  00 00 00 00 00 00 00 02 00 00 00 00 00 00 00 00  ................
0020  00 02 00 01 00 06 70 68 6f 74 6f 73 00 02 00 05  ......photos....
0030  61 2e 74 78 74                                   a.txt
"""


def parse_dump(text):
    out = bytearray()
    for line in text.strip().splitlines():
        # "OOOO  hh hh ... hh  ascii": the hex part is columns 6..53
        hexpart = line[6:6 + 16 * 3]
        out += bytes.fromhex(hexpart.replace(" ", ""))
    return bytes(out)


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, fn):
        try:
            detail = fn()
        except Exception as e:  # noqa: BLE001 - report every failure as a line
            self.failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
            return None
        self.passed += 1
        print("PASS %s%s" % (name, (" (" + str(detail) + ")") if detail else ""), flush=True)
        return detail


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_code(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ac.AgadirError as e:
        if e.code != code:
            raise AssertionError("expected code %d, got %d (%s)" % (code, e.code, e.message))
        expect(e.message, "error MESSAGE is empty")
        return "code %d: %s" % (e.code, e.message)
    raise AssertionError("expected code %d, call succeeded" % code)


# ---------------------------------------------------------------- more error codes, limits, pipelining

def connection_error(host, port, data, timeout):
    """Sends data on a fresh connection and reads until the node closes it. Returns
    (the other frames, the error frame as a Frame). Expects the documented shape: one
    RESPONSE with request id 0, opcode 0, END_STREAM, a MESSAGE, then the connection
    closed (answers of requests already in flight may come before it closes)."""
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            raw.sendall(data)
        except OSError:
            pass  # the node may close before it read everything; its answer is still there
        buf = b""
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            if time.monotonic() > deadline:
                raise AssertionError("the node did not close the connection within %.0f s" % timeout)
            try:
                chunk = raw.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    finally:
        raw.close()
    frames, pos = [], 0
    while pos + 32 <= len(buf):
        magic, ver, kind, flags, opcode, status, h, rid, p, res = ac.HEADER.unpack_from(buf, pos)
        expect(magic == ac.MAGIC and ver == 1, "answer frame header %r" % buf[pos:pos + 32])
        expect(pos + 32 + h + p <= len(buf), "answer frame cut short")
        fields = ac.decode_fields(buf[pos + 32:pos + 32 + h], 256)
        frames.append(ac.Frame(kind, flags, opcode, status, rid, fields, buf[pos + 32 + h:pos + 32 + h + p]))
        pos += 32 + h + p
    expect(pos == len(buf), "%d stray bytes after the last frame" % (len(buf) - pos))
    errors = [f for f in frames if f.request_id == 0]
    expect(len(errors) == 1, "%d frames with request id 0 (frames: %r)" % (
        len(errors), [(f.kind, f.request_id, f.status) for f in frames]))
    e = errors[0]
    expect(e.kind == ac.RESPONSE and e.opcode == 0 and e.end_stream,
           "kind %d opcode %d flags %d" % (e.kind, e.opcode, e.flags))
    expect(e.message(), "no MESSAGE")
    expect(not e.payload, "payload on an error")
    return [f for f in frames if f is not e], e


def expect_connection_error(code, host, port, data, timeout):
    _, e = connection_error(host, port, data, timeout)
    expect(e.status == code, "connection-level status %d (%s), expected %d" % (e.status, e.message(), code))
    return "RESPONSE id 0, status %d: %s; connection closed" % (e.status, e.message())


def quiet(sock, seconds):
    """True when nothing arrives on sock for seconds (the connection stays open)."""
    r, _, _ = select.select([sock], [], [], seconds)
    return not r


def filler_field(total_section_bytes, fields_before=()):
    """An unknown-tag field (tag 999) sized so that the fields section of fields_before
    plus it takes exactly total_section_bytes."""
    used = 2 + sum(4 + len(v) for _, v in fields_before) + 4
    return (999, b"\0" * (total_section_bytes - used))


def more_checks(ck, c, args, host, port, bucket, keys, objects):
    timeout = args.timeout

    def fresh():
        d = ac.AgadirClient(timeout=timeout)
        d.credentials = c.credentials
        d.connect(host, port)
        return d

    def signed_frame(d, rid, opcode, fields, end=True, payload=b"", version=1):
        f = ac.encode_frame(ac.REQUEST, rid, opcode, 0, d.signed(opcode, fields), payload, end)
        if version != 1:
            f = f[:4] + bytes([version]) + f[5:]
        return f

    # ---- 1xx: connection-level errors (docs/protocol.md, "Error codes" and "Limits")
    ck.check("protocol version 2 -> 101, connection closed",
             lambda: expect_connection_error(101, host, port, signed_frame(c, 1, ac.OP_PING, [], version=2), timeout))
    ck.check("opcode 50 (not in the table) -> 102, connection closed",
             lambda: expect_connection_error(102, host, port, signed_frame(c, 1, 50, []), timeout))

    def payload_over_limit():
        # Only the header: "a frame announcing an oversized section is refused before its
        # bytes are read".
        header = ac.HEADER.pack(ac.MAGIC, 1, ac.REQUEST, 0, ac.OP_PUT, 0, 0, 1, ac.DEFAULT_MAX_PAYLOAD_BYTES + 1, 0)
        return expect_connection_error(103, host, port, header, timeout)

    ck.check("payload of 1 MiB + 1 announced -> 103 before the payload is sent", payload_over_limit)

    def fields_over_limit():
        header = ac.HEADER.pack(ac.MAGIC, 1, ac.REQUEST, ac.END_STREAM, ac.OP_PING, 0,
                                ac.DEFAULT_MAX_HEADER_BYTES + 1, 1, 0, 0)
        return expect_connection_error(104, host, port, header, timeout)

    ck.check("fields section of 64 KiB + 1 announced -> 104 before the fields are sent", fields_over_limit)

    def fields_at_limit():
        d = fresh()
        d.credentials = None  # an unsigned PING: its fields are exactly the ones written here
        try:
            f = d._request(ac.OP_PING, [filler_field(ac.DEFAULT_MAX_HEADER_BYTES)], max_body=0)[0]
            expect(d.ping()["node_id"], "no PING answer after")
            return "a PING whose fields take exactly 65536 bytes (one unknown tag) answered status %d" % f.status
        finally:
            d.close()

    ck.check("fields section of exactly 64 KiB (an unknown tag) accepted", fields_at_limit)

    def field_count():
        d = fresh()
        d.credentials = None
        try:
            d._request(ac.OP_PING, [(999, b"")] * ac.DEFAULT_MAX_FIELD_COUNT, max_body=0)
        finally:
            d.close()
        frame = ac.encode_frame(ac.REQUEST, 1, ac.OP_PING, 0, [(999, b"")] * (ac.DEFAULT_MAX_FIELD_COUNT + 1), b"", True)
        return "256 fields accepted; 257: " + expect_connection_error(104, host, port, frame, timeout)

    ck.check("256 fields accepted, 257 -> 104", field_count)

    def open_put(d, rid, key, size=10):
        return signed_frame(d, rid, ac.OP_PUT, ac.put_request_fields(bucket, key, size), end=False)

    def duplicate_id():
        d = fresh()
        try:
            data = open_put(d, 7, "dup/obj") + signed_frame(d, 7, ac.OP_PING, [])
        finally:
            d.close()
        return expect_connection_error(105, host, port, data, timeout)

    ck.check("a request id already in flight (an open PUT body) -> 105", duplicate_id)

    def too_many():
        d = fresh()
        try:
            limit = 128
            d.sock.sendall(b"".join(open_put(d, rid, "many/%d" % rid) for rid in range(1, limit + 1)))
            expect(quiet(d.sock, 0.5), "the node answered while %d requests were in flight" % limit)
            d.sock.sendall(open_put(d, limit + 1, "many/%d" % (limit + 1)))
            for _ in range(limit + 2):
                f = d._read_frame(time.monotonic() + timeout)
                expect(False, "an answer for request %d (status %d) before the refusal" % (f.request_id, f.status))
        except ac.ConnectionLevelError as e:
            expect(e.code == 106, "connection-level status %d: %s" % (e.code, e.message))
            return "128 open bodies accepted; the 129th -> 106 (%s), connection closed" % e.message
        finally:
            d.close()
        raise AssertionError("no refusal")

    ck.check("128 requests in flight accepted, the 129th -> 106", too_many)

    def stalled_body():
        d = fresh()
        try:
            rid = 11
            d.sock.sendall(open_put(d, rid, "stall/obj", size=10)
                           + ac.encode_frame(ac.DATA, rid, 0, 0, None, b"12345", False))
            started = time.monotonic()
            # "detected within twice that": wait at most twice the node's setting, plus slack
            f = d._read_frame_for(rid, started + 2 * args.request_timeout_seconds + 30)
            waited = time.monotonic() - started
            expect(f.kind == ac.RESPONSE and f.status == 107 and f.end_stream,
                   "kind %d status %d: %s" % (f.kind, f.status, f.message()))
            expect(f.message(), "no MESSAGE")
            # The body is still open on our side: give it up, as the doc allows, then reuse the connection.
            d.sock.sendall(ac.encode_frame(ac.ABORT, rid, 0, 200, [ac.f_str(ac.T_MESSAGE, "stalled")], b"", True))
            expect(d.ping()["node_id"], "PING after the timeout")
            expect_code(303, d.head, bucket, "stall/obj")
            return "107 after %.1f s (%s); the connection stays, nothing stored" % (waited, f.message())
        finally:
            d.close()

    ck.check("a body stalled for requestTimeoutSeconds -> 107, connection stays", stalled_body)

    # ---- 2xx refusals of a PUT
    ck.check("PUT body shorter than SIZE -> 203",
             lambda: expect_code(203, c.put, bucket, "len/short", b"12345", size=10))
    ck.check("PUT body longer than SIZE -> 203",
             lambda: expect_code(203, c.put, bucket, "len/long", b"12345", size=3))
    ck.check("PUT chunked body (5000 bytes) shorter than SIZE 6000 -> 203",
             lambda: expect_code(203, c.put, bucket, "len/short-large", os.urandom(5000), size=6000))

    def length_mismatch_not_stored():
        for k in ("len/short", "len/long", "len/short-large"):
            expect_code(303, c.head, bucket, k)
        return "none of them visible"

    ck.check("a PUT refused with 203 stores nothing", length_mismatch_not_stored)

    def too_large():
        d = fresh()
        try:
            tib = 1 << 40
            rid = 21
            d.sock.sendall(open_put(d, rid, "big/over", size=tib + 1))
            f = d._read_frame_for(rid, time.monotonic() + timeout)
            expect(f.kind == ac.RESPONSE and f.status == 207, "SIZE 2^40+1: kind %d status %d: %s" % (
                f.kind, f.status, f.message()))
            d.sock.sendall(ac.encode_frame(ac.ABORT, rid, 0, 200, [ac.f_str(ac.T_MESSAGE, "done")], b"", True))
            # At the limit: SIZE 2^40 is not refused; the client's ABORT answers it instead.
            rid = 22
            d.sock.sendall(open_put(d, rid, "big/at", size=tib) + ac.encode_frame(ac.DATA, rid, 0, 0, None, b"x" * 100, False))
            expect(quiet(d.sock, 0.5), "SIZE 2^40 answered before the body ended")
            d.sock.sendall(ac.encode_frame(ac.ABORT, rid, 0, 200, [ac.f_str(ac.T_MESSAGE, "client gives up")],
                                           b"", True))
            g = d._read_frame_for(rid, time.monotonic() + timeout)
            expect(g.status == 200 and g.message() == "client gives up",
                   "SIZE 2^40 then ABORT answered status %d: %s" % (g.status, g.message()))
            expect(d.ping()["node_id"], "PING afterwards")
            return "SIZE 2^40+1 -> 207 (%s); SIZE 2^40 accepted until the client's ABORT" % f.message()
        finally:
            d.close()

    ck.check("PUT SIZE over 1 TiB -> 207 before any body byte; SIZE 1 TiB not refused", too_large)

    # ---- user metadata bounds (docs/protocol.md, "Names" and "Limits")
    def md_entries():
        at = [("m%02d" % i, "v") for i in range(64)]
        c.put(bucket, "md/64", b"x", metadata=at)
        keys.append("md/64")
        h = c.head(bucket, "md/64")
        expect(h["metadata"] == dict(at), "64 entries read back as %d" % len(h["metadata"]))
        over = at + [("m64", "v")]
        msg = expect_code(206, c.put, bucket, "md/65", b"x", metadata=over)
        expect_code(303, c.head, bucket, "md/65")
        return "64 accepted and read back; 65 -> " + msg

    ck.check("64 metadata entries accepted, 65 -> 206", md_entries)

    def md_bytes():
        # names plus values count UTF-8 bytes, not the length prefixes: "é" is 2 bytes.
        value = "é" * ((8192 - 4) // 2)  # 8188 bytes
        at = {"name": value}  # 4 + 8188 = 8192
        c.put(bucket, "md/8192", b"x", metadata=at)
        keys.append("md/8192")
        expect(c.head(bucket, "md/8192")["metadata"] == at, "8192 bytes not read back")
        over = {"name": value + "a"}
        msg = expect_code(206, c.put, bucket, "md/8193", b"x", metadata=over)
        expect_code(303, c.head, bucket, "md/8193")
        spread = {"k%02d" % i: "v" * 126 for i in range(64)}  # 64 x (3 + 126) = 8256
        expect_code(206, c.put, bucket, "md/spread", b"x", metadata=spread)
        return "8192 bytes accepted; 8193 -> %s; 64 entries of 8256 bytes -> 206" % msg

    ck.check("8192 bytes of metadata names+values accepted, 8193 -> 206", md_bytes)

    def md_names():
        out = []
        for label, md in (("repeated name", [("a", "1"), ("a", "2")]), ("empty name", [("", "1")]),
                          ("space in name", [("a b", "1")]), ("'=' in name", [("a=b", "1")]),
                          ("control character in name", [("a\x01", "1")])):
            expect_code(200, c.put, bucket, "md/bad", b"x", metadata=md)
            out.append(label)
        c.put(bucket, "md/case", b"x", metadata=[("A", "1"), ("a", "2")])
        keys.append("md/case")
        expect(c.head(bucket, "md/case")["metadata"] == {"A": "1", "a": "2"}, "A and a not two names")
        return "200 for: " + ", ".join(out) + "; 'A' and 'a' are two names"

    ck.check("metadata names: repeated, empty, space, '=', control -> 200; case-sensitive", md_names)

    # ---- CONSISTENCY on a standalone node: ignored when 1-5, INVALID_ARGUMENT otherwise
    def standalone_levels():
        for level in (ac.ONE, ac.QUORUM, ac.LOCAL_QUORUM, ac.EACH_QUORUM, ac.ALL):
            c.put(bucket, "level/obj", b"level %d" % level, consistency=level)
            expect(c.get(bucket, "level/obj", consistency=level)["data"] == b"level %d" % level, "GET")
        keys.append("level/obj")
        for raw in (0, 6):
            expect_code(200, c.put, bucket, "level/bad", b"x", consistency=raw)
            expect_code(200, c.head, bucket, "level/obj", consistency=raw)
        expect_code(303, c.head, bucket, "level/bad")
        return "levels 1-5 served; 0 and 6 -> 200"

    ck.check("CONSISTENCY 1-5 ignored by a standalone node, 0 and 6 -> 200", standalone_levels)

    # ---- LIST LIMIT above 1000: the Limits table says INVALID_ARGUMENT (no clamping)
    def list_limits():
        def raw_list(limit):
            return c._request(ac.OP_LIST, [ac.f_str(ac.T_BUCKET, bucket), ac.f_u32(ac.T_LIMIT, limit)])[1]
        page = ac.decode_list_page(raw_list(1000))
        expect(not page["truncated"], "LIMIT 1000 page truncated")
        a = expect_code(200, raw_list, 1001)
        expect_code(200, raw_list, 0xFFFFFFFF)
        return "LIMIT 1000 answered (%d keys); 1001 and 2^32-1 -> %s" % (len(page["objects"]), a)

    ck.check("LIST LIMIT 1000 accepted, 1001 and 2^32-1 -> 200 (not clamped)", list_limits)

    # ---- several requests in flight on one connection ("Transport")
    big_key = "rt/size-%d" % (3 * MiB + 17)

    def pipelined():
        d = fresh()
        try:
            small = os.urandom(3000)
            large = os.urandom(2 * MiB + 5)
            ids = {"put-small": 2 ** 64 - 1, "put-large": 2 ** 63, "get-large": 3, "head": 1 << 40, "ping": 5,
                   "get-missing": 6, "list": 7, "get-range": 8}
            reqs = {
                "put-small": (ac.OP_PUT, ac.put_request_fields(bucket, "pipe/small", len(small)), small),
                "put-large": (ac.OP_PUT, ac.put_request_fields(bucket, "pipe/large", len(large)), large),
                "get-large": (ac.OP_GET, ac.get_request_fields(bucket, big_key), b""),
                "head": (ac.OP_HEAD, ac.get_request_fields(bucket, "meta/obj"), b""),
                "ping": (ac.OP_PING, [], b""),
                "get-missing": (ac.OP_GET, ac.get_request_fields(bucket, "pipe/none"), b""),
                "list": (ac.OP_LIST, [ac.f_str(ac.T_BUCKET, bucket), ac.f_str(ac.T_PREFIX, "ls/")], b""),
                "get-range": (ac.OP_GET, ac.get_request_fields(bucket, "rt/size-5000", (10, 20)), b""),
            }
            frames = []
            for name, (op, fields, body) in reqs.items():
                frames += d.request_frames(ids[name], op, fields, body)
            answers = d.exchange(frames, list(ids.values()))
            keys.extend(["pipe/small", "pipe/large"])
            got = {name: answers[ids[name]] for name in ids}
            for name in ("put-small", "put-large"):
                f, _ = d.answer(ac.OP_PUT, got[name])
                want = hashlib.sha256(small if name == "put-small" else large).digest()
                expect(ac.d_id(f, ac.T_ETAG, "ETAG") == want, "%s: ETAG of another body" % name)
            f, body = d.answer(ac.OP_GET, got["get-large"])
            expect(body == objects[big_key], "get-large: body differs")
            f, _ = d.answer(ac.OP_HEAD, got["head"])
            expect(ac.d_str(f, ac.T_KEY, "KEY") == "meta/obj", "head: KEY %r" % ac.d_str(f, ac.T_KEY, "KEY"))
            f, _ = d.answer(ac.OP_PING, got["ping"])
            expect(ac.d_str(f, ac.T_NODE_ID, "NODE_ID"), "ping: NODE_ID")
            try:
                d.answer(ac.OP_GET, got["get-missing"])
                raise AssertionError("get-missing answered OK")
            except ac.AgadirError as e:
                expect(e.code == 303, "get-missing: %d" % e.code)
            _, body = d.answer(ac.OP_LIST, got["list"])
            listed = [o["key"] for o in ac.decode_list_page(body)["objects"]]
            expect(listed and all(k.startswith("ls/") for k in listed), "list: %r" % listed)
            _, body = d.answer(ac.OP_GET, got["get-range"])
            expect(body == objects["rt/size-5000"][10:30], "get-range: body differs")
            expect(c.get(bucket, "pipe/large")["data"] == large, "pipe/large read back differs")
            # Every id is free again: reuse two of them at once.
            again = d.exchange(d.request_frames(3, ac.OP_PING, []) + d.request_frames(5, ac.OP_HEAD,
                               ac.get_request_fields(bucket, "pipe/small")), [3, 5])
            d.answer(ac.OP_PING, again[3])
            d.answer(ac.OP_HEAD, again[5])
            return "8 requests sent back to back (ids up to 2^64-1), each answer matched by id; ids reused after"
        finally:
            d.close()

    ck.check("8 requests in flight on one connection, answers matched by request id", pipelined)

    def interleaved_uploads():
        d = fresh()
        try:
            a, b = os.urandom(3 * MiB + 1), os.urandom(2 * MiB + 7)
            fa = d.request_frames(101, ac.OP_PUT, ac.put_request_fields(bucket, "inter/a", len(a)), a,
                                  data_frame_bytes=512 * 1024)
            fb = d.request_frames(102, ac.OP_PUT, ac.put_request_fields(bucket, "inter/b", len(b)), b,
                                  data_frame_bytes=300 * 1000)
            # REQUEST a, REQUEST b, then their DATA frames alternately
            frames = []
            for i in range(max(len(fa), len(fb))):
                frames += fa[i:i + 1] + fb[i:i + 1]
            answers = d.exchange(frames, [101, 102])
            keys.extend(["inter/a", "inter/b"])
            fa_, _ = d.answer(ac.OP_PUT, answers[101])
            fb_, _ = d.answer(ac.OP_PUT, answers[102])
            expect(ac.d_id(fa_, ac.T_ETAG, "ETAG") == hashlib.sha256(a).digest(), "ETAG of inter/a")
            expect(ac.d_id(fb_, ac.T_ETAG, "ETAG") == hashlib.sha256(b).digest(), "ETAG of inter/b")
            # Both read back at once, their answers' frames interleaving as the node likes.
            answers = d.exchange(d.request_frames(201, ac.OP_GET, ac.get_request_fields(bucket, "inter/a"))
                                 + d.request_frames(202, ac.OP_GET, ac.get_request_fields(bucket, "inter/b")),
                                 [201, 202])
            expect(d.answer(ac.OP_GET, answers[201])[1] == a, "inter/a read back differs")
            expect(d.answer(ac.OP_GET, answers[202])[1] == b, "inter/b read back differs")
            return "%d + %d frames alternated; both bodies stored and read back intact" % (len(fa), len(fb))
        finally:
            d.close()

    ck.check("two PUT bodies with their DATA frames interleaved on one connection", interleaved_uploads)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("address", help="HOST:PORT of the node's client endpoint")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--credentials", required=True, help="credentials file of a key with every right (the root key)")
    ap.add_argument("--request-timeout-seconds", type=float, default=60.0,
                    help="the node's requestTimeoutSeconds (documented default 60)")
    args = ap.parse_args()
    host, port = ac.parse_hostport(args.address)

    ck = Checker()
    c = ac.AgadirClient(timeout=args.timeout)
    c.credentials = ac.read_credentials(args.credentials)

    # ---- offline: byte-exact request frames from the document
    def doc_put():
        frame = ac.encode_frame(ac.REQUEST, 1, ac.OP_PUT, 0,
                                ac.put_request_fields("photos", "a.txt", 5, "text/plain"),
                                b"hello", end_stream=True)
        want = parse_dump(DOC_PUT_REQUEST)
        expect(frame == want, "differs:\n ours %s\n doc  %s" % (frame.hex(), want.hex()))
        return "%d bytes identical" % len(frame)

    def doc_get():
        frame = ac.encode_frame(ac.REQUEST, 2, ac.OP_GET, 0,
                                ac.get_request_fields("photos", "a.txt"), b"", end_stream=True)
        want = parse_dump(DOC_GET_REQUEST)
        expect(frame == want, "differs:\n ours %s\n doc  %s" % (frame.hex(), want.hex()))
        return "%d bytes identical" % len(frame)

    ck.check("doc example PUT request frame", doc_put)
    ck.check("doc example GET request frame", doc_get)

    try:
        c.connect(host, port)
    except OSError as e:
        print("FAIL connect %s: %s" % (args.address, e))
        ck.failed += 1
        print("%d passed, %d failed" % (ck.passed, ck.failed))
        return 1

    # ---- ping
    def ping():
        p = c.ping()
        expect(p["node_id"], "empty NODE_ID")
        expect(p["server_version"], "empty SERVER_VERSION")
        skew = abs(p["time_ms"] - int(time.time() * 1000))
        expect(skew < 5 * 60 * 1000, "TIME_MS off by %d ms" % skew)
        return "node %s, version %s, skew %d ms" % (p["node_id"], p["server_version"], skew)

    ck.check("ping", ping)

    # ---- signed requests (docs/protocol.md, "Signed requests")
    def raw_request(opcode, fields):
        rid = c._new_id()
        c.sock.sendall(ac.encode_frame(ac.REQUEST, rid, opcode, 0, fields, b"", True))
        return c._read_frame_for(rid, time.monotonic() + 10)

    def unsigned_refused():
        f = raw_request(ac.OP_LIST_BUCKETS, [])
        expect(f.status == 209, "unsigned LIST_BUCKETS answered status %d" % f.status)
        f = raw_request(ac.OP_PING, [])
        expect(f.status == 0, "unsigned PING answered status %d" % f.status)
        return "LIST_BUCKETS -> 209 NOT_AUTHENTICATED; PING answered"

    def wrong_secret_refused():
        key, _ = c.credentials
        f = raw_request(ac.OP_LIST_BUCKETS, ac.sign_fields(ac.OP_LIST_BUCKETS, [], key, "not-the-secret"))
        expect(f.status == 209, "a wrong signature answered status %d" % f.status)
        return "209 NOT_AUTHENTICATED"

    def stale_refused():
        old = int(time.time() * 1000) - 60 * 60 * 1000
        f = raw_request(ac.OP_LIST_BUCKETS, ac.sign_fields(ac.OP_LIST_BUCKETS, [], *c.credentials, signed_at_ms=old))
        expect(f.status == 210, "a request signed an hour ago answered status %d" % f.status)
        return "210 REQUEST_TIME_SKEWED"

    def replay_refused():
        fields = ac.sign_fields(ac.OP_LIST_BUCKETS, [], *c.credentials)
        first = raw_request(ac.OP_LIST_BUCKETS, fields)
        expect(first.status == 0, "the first sending answered status %d" % first.status)
        again = raw_request(ac.OP_LIST_BUCKETS, fields)
        expect(again.status == 211, "the replay answered status %d" % again.status)
        return "first 0, replay 211 REPLAYED_REQUEST"

    ck.check("unsigned request refused, PING answered", unsigned_refused)
    ck.check("wrong signature refused", wrong_secret_refused)
    ck.check("stale signature refused", stale_refused)
    ck.check("replayed request refused", replay_refused)

    bucket = "py-" + os.urandom(6).hex()

    def create():
        c.create_bucket(bucket)
        return bucket

    ck.check("create bucket", create)

    def list_buckets():
        bs = c.list_buckets()
        mine = [b for b in bs if b["name"] == bucket]
        expect(len(mine) == 1, "bucket listed %d times" % len(mine))
        expect(mine[0]["policy"] == "default", "policy %r" % mine[0]["policy"])
        skew = abs(mine[0]["created_ms"] - int(time.time() * 1000))
        expect(skew < 5 * 60 * 1000, "createdMillis off by %d ms" % skew)
        return "%d bucket(s)" % len(bs)

    ck.check("list buckets shows it with policy default", list_buckets)
    ck.check("create again -> 301", lambda: expect_code(301, c.create_bucket, bucket))
    ck.check("invalid bucket name 'Bad_Name' -> 201", lambda: expect_code(201, c.create_bucket, "Bad_Name"))
    ck.check("invalid bucket name 'ab' -> 201", lambda: expect_code(201, c.create_bucket, "ab"))
    ck.check("invalid bucket name '192.168.1.1' -> 201",
             lambda: expect_code(201, c.create_bucket, "192.168.1.1"))
    ck.check("invalid bucket name 'a..b' -> 201", lambda: expect_code(201, c.create_bucket, "a..b"))

    # ---- round trips
    keys = []
    objects = {}
    for size in (0, 1, 4096, 5000, 3 * MiB + 17):
        key = "rt/size-%d" % size

        def rt(size=size, key=key):
            data = os.urandom(size)
            sha = hashlib.sha256(data).digest()
            pr = c.put(bucket, key, data, content_type="application/x-test")
            put_stats = dict(c.last_stats)
            keys.append(key)
            objects[key] = data
            expect(pr["etag"] == sha, "PUT ETAG != SHA-256")
            expect(pr["size"] == size, "PUT SIZE %d" % pr["size"])
            g = c.get(bucket, key)
            get_stats = dict(c.last_stats)
            expect(hashlib.sha256(g["data"]).digest() == sha, "GET body SHA-256 differs")
            expect(g["data"] == data, "GET body differs")
            expect(g["etag"] == sha, "GET ETAG != SHA-256")
            expect(g["size"] == size, "GET SIZE %d" % g["size"])
            expect(g["bucket"] == bucket and g["key"] == key, "GET BUCKET/KEY echo")
            expect(g["content_type"] == "application/x-test", "content type %r" % g["content_type"])
            expect(g["version"] == pr["version"], "GET VERSION != PUT VERSION")
            if size > MiB:
                expect(put_stats["sent_data_frames"] == 4, "PUT used %d DATA frames" % put_stats["sent_data_frames"])
                expect(get_stats["recv_data_frames"] >= 3, "GET used %d DATA frames" % get_stats["recv_data_frames"])
            return "etag %s.., put %d frame(s), get %d frame(s)" % (
                sha.hex()[:12], put_stats["sent_frames"], get_stats["recv_frames"])

        ck.check("put/get round trip %d bytes" % size, rt)

    # ---- content sha
    def put_with_sha():
        data = os.urandom(1000)
        pr = c.put(bucket, "sha/ok", data, content_sha256=True)
        keys.append("sha/ok")
        expect(pr["etag"] == hashlib.sha256(data).digest(), "ETAG")

    ck.check("PUT with correct CONTENT_SHA256", put_with_sha)
    ck.check("PUT with wrong CONTENT_SHA256 -> 204",
             lambda: expect_code(204, c.put, bucket, "sha/bad", b"abc", content_sha256=b"\0" * 32))

    # ---- ranges
    def ranged():
        key = "rt/size-5000"
        data = objects[key]
        g = c.get(bucket, key, range=(100, 1000))
        expect(g["data"] == data[100:1100], "range body differs")
        expect(g["range"] == (100, 1000), "resolved RANGE %r" % (g["range"],))
        expect(g["size"] == 5000, "SIZE %d (should be object size)" % g["size"])
        return "RANGE echoed %r" % (g["range"],)

    ck.check("ranged GET (100, 1000) of 5000-byte object", ranged)

    def ranged_to_end():
        key = "rt/size-5000"
        g = c.get(bucket, key, range=(4000, None))
        expect(g["data"] == objects[key][4000:], "body differs")
        return "resolved RANGE %r" % (g["range"],)

    ck.check("ranged GET to end (length ff..ff)", ranged_to_end)

    def ranged_clamped():
        key = "rt/size-5000"
        g = c.get(bucket, key, range=(4990, 100))
        expect(g["data"] == objects[key][4990:], "body differs")
        return "resolved RANGE %r" % (g["range"],)

    ck.check("ranged GET clamped at end", ranged_clamped)

    def ranged_large():
        key = "rt/size-%d" % (3 * MiB + 17)
        off, ln = MiB - 5, 2 * MiB + 10
        g = c.get(bucket, key, range=(off, ln))
        expect(g["data"] == objects[key][off:off + ln], "body differs")
        return "%d bytes in %d frame(s)" % (len(g["data"]), c.last_stats["recv_frames"])

    ck.check("ranged GET across chunks of the large object", ranged_large)

    def ranged_at_size():
        g = c.get(bucket, "rt/size-5000", range=(5000, 10))
        expect(g["data"] == b"", "expected empty body")
        return "resolved RANGE %r" % (g["range"],)

    ck.check("ranged GET with offset == SIZE is empty", ranged_at_size)
    ck.check("ranged GET offset > SIZE -> 205",
             lambda: expect_code(205, c.get, bucket, "rt/size-5000", range=(5001, 1)))

    # ---- HEAD with metadata
    def head():
        md = {"zeta": "last", "alpha": "first", "m-id": "42"}
        data = b"metadata object"
        pr = c.put(bucket, "meta/obj", data, content_type="text/plain; charset=utf-8", metadata=md)
        keys.append("meta/obj")
        h = c.head(bucket, "meta/obj")
        expect(c.last_stats["recv_frames"] == 1, "HEAD answer had %d frames" % c.last_stats["recv_frames"])
        expect(h["bucket"] == bucket and h["key"] == "meta/obj", "BUCKET/KEY")
        expect(h["size"] == len(data), "SIZE")
        expect(h["etag"] == hashlib.sha256(data).digest(), "ETAG")
        expect(h["version"] == pr["version"], "VERSION")
        expect(h["content_type"] == "text/plain; charset=utf-8", "CONTENT_TYPE %r" % h["content_type"])
        expect(h["metadata"] == md, "METADATA %r" % h["metadata"])
        expect(list(h["metadata"]) == sorted(md), "metadata not sorted by name: %r" % list(h["metadata"]))
        g = c.get(bucket, "meta/obj")
        expect(g["metadata"] == md and g["data"] == data, "GET metadata/body")
        return "metadata %r, version %s" % (h["metadata"], ac.format_version(h["version"]))

    ck.check("HEAD fields incl. metadata", head)

    def default_ct():
        c.put(bucket, "meta/noct", b"x")
        keys.append("meta/noct")
        h = c.head(bucket, "meta/noct")
        # "default `application/octet-stream` when a PUT omits it" (Fields, tag 3)
        expect(h["content_type"] == "application/octet-stream", "HEAD CONTENT_TYPE %r" % h["content_type"])
        g = c.get(bucket, "meta/noct")
        expect(g["content_type"] == "application/octet-stream", "GET CONTENT_TYPE %r" % g["content_type"])
        return "content type when none sent: %r" % h["content_type"]

    ck.check("HEAD/GET without CONTENT_TYPE on PUT -> application/octet-stream", default_ct)

    def overwrite_version():
        a = c.put(bucket, "meta/ow", b"one")
        b = c.put(bucket, "meta/ow", b"two")
        keys.append("meta/ow")
        expect(b["version"] > a["version"], "second VERSION not greater")
        expect(c.get(bucket, "meta/ow")["data"] == b"two", "overwrite not visible")

    ck.check("overwrite: newer VERSION wins", overwrite_version)

    # ---- LIST
    list_keys = ["ls/a", "ls/b", "ls/c", "ls/d1/x", "ls/d1/y", "ls/d2/z", "ls/e", "ls/é", "lsx"]

    def list_setup():
        for k in list_keys:
            c.put(bucket, k, k.encode())
            keys.append(k)

    ck.check("LIST setup (%d keys)" % len(list_keys), list_setup)

    def list_prefix_paged():
        objs, prefixes, pages = c.list_all(bucket, prefix="ls/", limit=2)
        got = [o["key"] for o in objs]
        want = sorted([k for k in list_keys if k.startswith("ls/")], key=lambda s: s.encode())
        expect(got == want, "keys %r != %r" % (got, want))
        expect(not prefixes, "unexpected common prefixes")
        for o in objs:
            expect(o["etag"] == hashlib.sha256(o["key"].encode()).digest(), "etag of %s" % o["key"])
            expect(o["size"] == len(o["key"].encode()), "size of %s" % o["key"])
        return "%d keys in %d pages" % (len(got), pages)

    ck.check("LIST prefix, limit 2, every key once in order", list_prefix_paged)

    def list_delim_paged():
        objs, prefixes, pages = c.list_all(bucket, prefix="ls/", delimiter="/", limit=2)
        got = [o["key"] for o in objs]
        want_keys = ["ls/a", "ls/b", "ls/c", "ls/e", "ls/é"]
        expect(got == want_keys, "keys %r" % got)
        expect(prefixes == ["ls/d1/", "ls/d2/"], "common prefixes %r" % prefixes)
        return "keys %r, prefixes %r, %d pages" % (got, prefixes, pages)

    ck.check("LIST prefix + delimiter, limit 2, every entry once", list_delim_paged)

    def list_first_page():
        p = c.list(bucket, prefix="ls/", delimiter="/", limit=2)
        expect(p["truncated"], "first page not truncated")
        expect(len(p["objects"]) + len(p["common_prefixes"]) == 2, "page size")
        expect(p["next_start_after"] == "ls/b", "nextStartAfter %r" % p["next_start_after"])
        p2 = c.list(bucket, prefix="ls/", delimiter="/", start_after="ls/c", limit=2)
        expect(p2["common_prefixes"] == ["ls/d1/", "ls/d2/"], "page 2 %r" % p2)
        p3 = c.list(bucket, prefix="ls/", delimiter="/", start_after="ls/d1/", limit=10)
        expect([o["key"] for o in p3["objects"]] == ["ls/e", "ls/é"] and p3["common_prefixes"] == ["ls/d2/"],
               "start_after common prefix: %r" % p3)
        return "nextStartAfter %r" % p["next_start_after"]

    ck.check("LIST truncated / nextStartAfter / START_AFTER semantics", list_first_page)

    def list_all_bucket():
        objs, _, pages = c.list_all(bucket, limit=1000)
        got = sorted(o["key"] for o in objs)
        expect(got == sorted(set(keys)), "bucket keys %r" % got)
        return "%d keys" % len(got)

    ck.check("LIST whole bucket", list_all_bucket)
    ck.check("LIST limit 0 -> 200",
             lambda: expect_code(200, lambda: c._request(ac.OP_LIST, [ac.f_str(ac.T_BUCKET, bucket),
                                                                      ac.f_u32(ac.T_LIMIT, 0)])))

    # ---- STAT
    def stat():
        s = c.stat()
        want = ["buckets", "objects", "logicalBytes", "inlineBytes", "chunks", "uniqueRawBytes",
                "referencedRawBytes", "storedBytes", "segmentFiles", "segmentBytes", "dedupRatio",
                "compressionRatio"]
        missing = [k for k in want if k not in s]
        expect(not missing, "missing keys %r" % missing)
        bad = [k for k in want if not isinstance(s[k], (int, float)) or isinstance(s[k], bool)]
        expect(not bad, "non-numeric %r" % bad)
        expect(s["buckets"] >= 1 and s["objects"] >= len(set(keys)), "counts %r" % s)
        extra = sorted(set(s) - set(want))
        return json.dumps({k: s[k] for k in want}) + ("; extra keys %r" % extra if extra else "")

    ck.check("STAT has the documented keys", stat)

    # ---- MEMBERS
    def members():
        node_id = c.ping()["node_id"]
        ms = c.members()
        me = [m for m in ms if m["node_id"] == node_id]
        expect(len(me) == 1, "the node %r is not listed once in %r" % (node_id, ms))
        expect(me[0]["state"] == "alive", "the node itself is %r" % me[0]["state"])
        expect(me[0]["last_contact_ms_ago"] == -1, "own last contact %r" % me[0]["last_contact_ms_ago"])
        expect(me[0]["client_address"].endswith(":%d" % port), "own client address %r" % me[0]["client_address"])
        # "`state` is one of `alive`, `suspect`, `dead`, `left`": anything else breaks the contract
        odd = [m["state"] for m in ms if m["state"] not in ac.MEMBER_STATES]
        expect(not odd, "states outside %r: %r" % (ac.MEMBER_STATES, odd))
        return "%d member(s); states %r" % (len(ms), sorted({m["state"] for m in ms}))

    ck.check("MEMBERS lists the node itself alive", members)

    # ---- DELETE
    def delete_then_get():
        d = c.delete(bucket, "rt/size-1")
        keys.remove("rt/size-1")
        expect(d["size"] == 0, "DELETE SIZE %r" % d["size"])
        expect(d["version"] is not None, "no VERSION")
        return expect_code(303, c.get, bucket, "rt/size-1")

    ck.check("DELETE then GET -> 303", delete_then_get)
    ck.check("HEAD deleted -> 303", lambda: expect_code(303, c.head, bucket, "rt/size-1"))
    ck.check("DELETE again -> 303", lambda: expect_code(303, c.delete, bucket, "rt/size-1"))
    ck.check("GET never-written key -> 303", lambda: expect_code(303, c.get, bucket, "nope/never"))
    ck.check("invalid key (control char) -> 202", lambda: expect_code(202, c.put, bucket, "bad\x01key", b"x"))
    ck.check("invalid key (1025 bytes) -> 202", lambda: expect_code(202, c.head, bucket, "k" * 1025))

    def deleted_not_listed():
        objs, _, _ = c.list_all(bucket, prefix="rt/")
        expect("rt/size-1" not in [o["key"] for o in objs], "deleted key still listed")

    ck.check("deleted key not in LIST", deleted_not_listed)
    ck.check("DELETE non-empty bucket -> 302", lambda: expect_code(302, c.delete_bucket, bucket))

    # ---- early error while uploading a large body
    def early_error():
        msg = expect_code(300, c.put, "py-missing-" + os.urandom(4).hex(), "k", os.urandom(20 * MiB))
        sent = c.last_stats["sent_data_frames"]
        expect(sent < 20, "client sent all %d DATA frames: no early answer" % sent)
        p = c.ping()
        expect(p["node_id"], "ping after early error")
        return msg + "; answered after %d of 20 DATA frames, client sent ABORT; connection still usable" % sent

    ck.check("20 MiB PUT to missing bucket -> early 300, ABORT, connection survives", early_error)

    def client_abort():
        rid = c._new_id()
        fields = ac.put_request_fields(bucket, "aborted/obj", 3 * MiB)
        c.sock.sendall(ac.encode_frame(ac.REQUEST, rid, ac.OP_PUT, 0, c.signed(ac.OP_PUT, fields), b"", False))
        c.sock.sendall(ac.encode_frame(ac.DATA, rid, 0, 0, None, b"x" * 1000, False))
        c.sock.sendall(ac.encode_frame(ac.ABORT, rid, 0, 200, [ac.f_str(ac.T_MESSAGE, "test gives up")],
                                       b"", True))
        f = c._read_frame_for(rid, time.monotonic() + 10)
        expect(f.kind in (ac.RESPONSE, ac.ABORT) and f.status != 0 and f.end_stream,
               "answer kind %d status %d" % (f.kind, f.status))
        expect_code(303, c.head, bucket, "aborted/obj")
        return "node answered kind %d status %d: %s; object not visible" % (f.kind, f.status, f.message())

    ck.check("client ABORT of an upload", client_abort)

    # ---- signed bodies (docs/protocol.md, "Signed bodies")
    def signed_put(key, payloads, tamper=None):
        """A PUT with BODY_SIGNING whose DATA frames tamper() may alter on their way, as an
        on-path attacker would. Returns the node's answer."""
        rid = c._new_id()
        size = sum(len(p) for p in payloads)
        fields = c.signed(ac.OP_PUT, ac.put_request_fields(bucket, key, size) + [(ac.T_BODY_SIGNING, b"\x01")])
        seed = dict(fields)[ac.T_SIGNATURE]
        frames = ac.signed_body_frames(rid, c.credentials[1], seed, payloads)
        if tamper is not None:
            frames = tamper(frames)
        c.sock.sendall(ac.encode_frame(ac.REQUEST, rid, ac.OP_PUT, 0, fields, b"", False))
        for frame in frames:
            c.sock.sendall(frame)
        return c._read_frame_for(rid, time.monotonic() + 30)

    body = [os.urandom(MiB), os.urandom(MiB), os.urandom(100)]

    def signed_body_ok():
        f = signed_put("signed/ok", body)
        expect(f.status == 0, "signed body answered %d: %s" % (f.status, f.message()))
        keys.append("signed/ok")
        g = c.get(bucket, "signed/ok")
        expect(g["data"] == b"".join(body), "GET body differs")
        return "3 signed DATA frames stored and read back"

    def refused(key, tamper, payloads=None):
        f = signed_put(key, payloads or body, tamper)
        expect(f.status == 209, "tampered body answered status %d: %s" % (f.status, f.message()))
        expect_code(303, c.head, bucket, key)
        return "209 NOT_AUTHENTICATED (%s); object not stored" % f.message()[:60]

    def flip_last_byte(frames):
        second = bytearray(frames[1])
        second[-1] ^= 1
        return [frames[0], bytes(second), frames[2]]

    def strip_signature(frames):
        h = ac.HEADER.unpack_from(frames[1], 0)
        payload = frames[1][32 + h[6]:]
        return [frames[0], ac.encode_frame(ac.DATA, h[7], 0, 0, None, payload, False), frames[2]]

    def cut_short(frames):
        # Drops the empty END_STREAM frame and marks the first one as the end instead.
        first = bytearray(frames[0])
        first[7] |= ac.END_STREAM
        return [bytes(first)]

    ck.check("PUT with BODY_SIGNING and signed DATA frames", signed_body_ok)
    ck.check("signed body: a DATA frame altered -> 209", lambda: refused("signed/altered", flip_last_byte))
    ck.check("signed body: DATA frames swapped -> 209",
             lambda: refused("signed/swapped", lambda fr: [fr[1], fr[0], fr[2]]))
    ck.check("signed body: FRAME_SIGNATURE missing -> 209", lambda: refused("signed/unsigned", strip_signature))
    ck.check("signed body: cut short, END_STREAM moved -> 209",
             lambda: refused("signed/cut", cut_short, [os.urandom(MiB), b""]))

    more_checks(ck, c, args, host, port, bucket, keys, objects)

    # ---- cleanup
    def cleanup():
        for k in list(dict.fromkeys(keys)):
            c.delete(bucket, k)
        objs, prefixes, _ = c.list_all(bucket)
        expect(not objs and not prefixes, "objects left: %r" % objs)
        c.delete_bucket(bucket)
        names = [b["name"] for b in c.list_buckets()]
        expect(bucket not in names, "bucket still listed")
        return "%d objects deleted" % len(set(keys))

    ck.check("delete all objects then the bucket", cleanup)
    ck.check("GET from missing bucket -> 300", lambda: expect_code(300, c.get, bucket, "rt/size-0"))
    ck.check("DELETE_BUCKET missing -> 300", lambda: expect_code(300, c.delete_bucket, bucket))

    # ---- connection-level error: request id 0 answer, then close
    def conn_error():
        raw = socket.create_connection((host, port), timeout=10)
        try:
            raw.sendall(b"XXXX" + b"\0" * 28)
            buf = b""
            for _ in range(1000):
                chunk = raw.recv(65536)
                if not chunk:
                    break
                buf += chunk
            expect(len(buf) >= 32, "no answer before close (%d bytes)" % len(buf))
            magic, ver, kind, flags, opcode, status, h, rid, p, res = ac.HEADER.unpack_from(buf, 0)
            expect(kind == ac.RESPONSE and rid == 0 and status == 100,
                   "kind %d id %d status %d" % (kind, rid, status))
            fields = ac.decode_fields(buf[32:32 + h], 256)
            msg = dict(fields).get(ac.T_MESSAGE, b"").decode()
            return "status %d opcode %d flags %d: %s" % (status, opcode, flags, msg)
        finally:
            raw.close()

    ck.check("bad magic -> RESPONSE id 0, 100, connection closed", conn_error)

    def unrequested_frame_signature():
        d = ac.AgadirClient(timeout=args.timeout)
        d.credentials = c.credentials
        d.connect(host, port)
        try:
            rid = d._new_id()
            fields = d.signed(ac.OP_PUT, ac.put_request_fields("any-bucket", "k", 10))
            d.sock.sendall(ac.encode_frame(ac.REQUEST, rid, ac.OP_PUT, 0, fields, b"", False))
            d.sock.sendall(ac.encode_frame(ac.DATA, rid, 0, 0, [(ac.T_FRAME_SIGNATURE, b"\0" * 32)], b"0123456789",
                                           True))
            # The node may answer the PUT first (NO_SUCH_BUCKET, early); the DATA frame then
            # closes the connection with a connection-level error.
            deadline = time.monotonic() + 10
            for _ in range(3):
                try:
                    f = d._read_frame_for(rid, deadline)
                except ac.ConnectionLevelError as e:
                    expect(e.code == 100, "connection-level status %d" % e.code)
                    return "100 MALFORMED_FRAME, connection closed"
                expect(f.status != 0, "the PUT was answered OK")
            raise AssertionError("answered kind %d status %d instead of closing" % (f.kind, f.status))
        finally:
            d.close()

    ck.check("DATA frame with fields its PUT did not ask for -> 100, connection closed", unrequested_frame_signature)

    c.close()
    print("%d passed, %d failed" % (ck.passed, ck.failed))
    return 0 if ck.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
