"""Minimal Python client for the Agadir native protocol, version 1.

Written only from docs/protocol.md. Standard library only.
"""

import hashlib
import hmac
import json
import os
import select
import socket
import ssl
import struct
import time

MAGIC = b"AGDR"
PROTOCOL_VERSION = 1
HEADER = struct.Struct(">4sBBHHHIQII")  # 32 bytes
assert HEADER.size == 32

# frame kinds
REQUEST, RESPONSE, DATA, ABORT = 1, 2, 3, 4
END_STREAM = 0x0001

# opcodes
OP_PING, OP_CREATE_BUCKET, OP_DELETE_BUCKET, OP_LIST_BUCKETS = 1, 2, 3, 4
OP_PUT, OP_GET, OP_HEAD, OP_DELETE, OP_LIST, OP_STAT = 5, 6, 7, 8, 9, 10
OP_MEMBERS, OP_ADMIN, OP_ROUTE = 11, 12, 13
OPCODES = set(range(1, 14))

MEMBER_STATES = ("alive", "suspect", "dead", "left")
MAX_MEMBERS = 100000
MAX_MEMBER_LABELS = 64

# field tags
T_BUCKET, T_KEY, T_CONTENT_TYPE, T_METADATA, T_SIZE, T_ETAG, T_VERSION = 1, 2, 3, 4, 5, 6, 7
T_RANGE, T_PREFIX, T_DELIMITER, T_START_AFTER, T_LIMIT, T_POLICY, T_MESSAGE = 8, 9, 10, 11, 12, 13, 14
T_CONTENT_SHA256, T_NODE_ID, T_SERVER_VERSION, T_CREATED_MS, T_TIME_MS = 15, 16, 17, 18, 19
T_CONSISTENCY, T_ADDRESS, T_ANSWERED, T_NEEDED, T_MAY_COORDINATE = 20, 21, 29, 30, 31
T_ACCESS_KEY, T_SIGNED_AT, T_REQUEST_NONCE, T_SIGNATURE = 35, 36, 37, 38
T_BODY_SIGNING, T_FRAME_SIGNATURE = 39, 40

RANGE_TO_END = 0xFFFFFFFFFFFFFFFF

# CONSISTENCY levels (field 20)
ONE, QUORUM, LOCAL_QUORUM, EACH_QUORUM, ALL = 1, 2, 3, 4, 5

# error codes (subset of names, for readability)
ERROR_NAMES = {
    100: "MALFORMED_FRAME", 101: "UNSUPPORTED_VERSION", 102: "UNKNOWN_OPCODE",
    103: "FRAME_TOO_LARGE", 104: "HEADER_TOO_LARGE", 105: "DUPLICATE_REQUEST_ID",
    106: "TOO_MANY_REQUESTS", 107: "REQUEST_TIMEOUT", 108: "IDLE_TIMEOUT",
    200: "INVALID_ARGUMENT", 201: "INVALID_BUCKET_NAME", 202: "INVALID_KEY",
    203: "BODY_LENGTH_MISMATCH", 204: "CHECKSUM_MISMATCH", 205: "RANGE_NOT_SATISFIABLE",
    206: "METADATA_TOO_LARGE", 207: "OBJECT_TOO_LARGE", 208: "ACCESS_DENIED", 209: "NOT_AUTHENTICATED",
    210: "REQUEST_TIME_SKEWED", 211: "REPLAYED_REQUEST",
    300: "NO_SUCH_BUCKET", 301: "BUCKET_ALREADY_EXISTS", 302: "BUCKET_NOT_EMPTY",
    303: "NO_SUCH_KEY", 304: "NO_SUCH_CHUNK", 305: "NO_SUCH_POLICY", 306: "POLICY_ALREADY_EXISTS",
    307: "LAYOUT_VERSION_CONFLICT", 308: "POLICY_UNSATISFIABLE", 309: "NO_SUCH_NODE", 310: "NODE_NOT_DRAINED",
    311: "NOT_ATTESTED", 312: "QUOTA_EXCEEDED", 400: "REDIRECT",
    500: "INTERNAL_ERROR", 501: "IO_ERROR", 502: "CORRUPT_CHUNK", 503: "CORRUPT_DATA",
    504: "SHUTTING_DOWN", 505: "STORAGE_FULL", 506: "UNAVAILABLE", 507: "NOT_ENOUGH_REPLICAS",
}

# default limits from the "Limits" table (configurable on the node, so also here)
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_FIELD_COUNT = 256
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_CONTENT_TYPE_BYTES = 256
MAX_KEY_BYTES = 1024
MAX_METADATA_ENTRIES = 64
MAX_METADATA_BYTES = 8192
MAX_LIST_LIMIT = 1000
# not in the document: a cap on non-object response bodies (LIST, LIST_BUCKETS, STAT)
DEFAULT_MAX_SMALL_BODY_BYTES = 64 * 1024 * 1024


class AgadirError(Exception):
    """An error answer (RESPONSE with non-zero status, or ABORT) from the node."""

    def __init__(self, code, message, request_id=None, fields=None):
        self.code = code
        self.message = message
        self.request_id = request_id
        self.fields = fields or []  # every field of the error frame (ADDRESS, ANSWERED, NEEDED...)
        name = ERROR_NAMES.get(code, "UNKNOWN")
        super().__init__("%d %s: %s" % (code, name, message))


    def all(self, tag):
        return [v for t, v in self.fields if t == tag]

    def addresses(self):
        """The ADDRESS fields of a REDIRECT, in order (best first)."""
        return [v.decode("utf-8") for v in self.all(T_ADDRESS)]

    def u32(self, tag):
        """A u32 field of the error frame (ANSWERED, NEEDED), or None."""
        values = self.all(tag)
        if not values:
            return None
        if len(values[0]) != 4:
            raise ProtocolViolation("field %d has %d bytes, expected 4" % (tag, len(values[0])), self.request_id)
        return struct.unpack(">I", values[0])[0]


class ConnectionLevelError(AgadirError):
    """RESPONSE with request id 0: the node closed the connection (1xx codes)."""


class ProtocolViolation(AgadirError):
    """The node sent something the document forbids (detected by this client)."""

    def __init__(self, message, request_id=None):
        super().__init__(100, "client-side check: " + message, request_id)


# ---------------------------------------------------------------- encoding

def encode_fields(fields):
    """fields: list of (tag, bytes). Returns the fields section ('' when empty)."""
    if not fields:
        return b""
    out = [struct.pack(">H", len(fields))]
    for tag, value in fields:
        if len(value) > 0xFFFF:
            raise ValueError("field %d too long (%d bytes)" % (tag, len(value)))
        out.append(struct.pack(">HH", tag, len(value)))
        out.append(value)
    return b"".join(out)


def encode_frame(kind, request_id, opcode=0, status=0, fields=None, payload=b"", end_stream=False):
    section = encode_fields(fields or [])
    flags = END_STREAM if end_stream else 0
    header = HEADER.pack(MAGIC, PROTOCOL_VERSION, kind, flags, opcode, status,
                         len(section), request_id, len(payload), 0)
    return header + section + payload


def canonical_request(opcode, fields):
    """The bytes a signature covers (docs/protocol.md, "Signed requests")."""
    signed = [f for f in fields if f[0] != T_SIGNATURE]
    signed = [f for _, f in sorted(enumerate(signed), key=lambda p: (p[1][0], p[0]))]
    out = [b"AGADIR1-HMAC-SHA256\n", struct.pack(">HI", opcode, len(signed))]
    for tag, value in signed:
        out.append(struct.pack(">HI", tag, len(value)))
        out.append(value)
    return b"".join(out)


def sign_fields(opcode, fields, access_key, secret_key, signed_at_ms=None, nonce=None):
    """fields plus ACCESS_KEY, SIGNED_AT, REQUEST_NONCE and SIGNATURE."""
    if signed_at_ms is None:
        signed_at_ms = int(time.time() * 1000)
    if nonce is None:
        nonce = os.urandom(16)
    out = list(fields) + [(T_ACCESS_KEY, access_key.encode("utf-8")),
                          (T_SIGNED_AT, struct.pack(">Q", signed_at_ms)),
                          (T_REQUEST_NONCE, nonce)]
    mac = hmac.new(secret_key.encode("utf-8"), canonical_request(opcode, out), hashlib.sha256).digest()
    return out + [(T_SIGNATURE, mac)]


def frame_signature(secret_key, previous, index, end_stream, payload):
    """The FRAME_SIGNATURE of a DATA frame (docs/protocol.md, "Signed bodies"): previous is
    the REQUEST's SIGNATURE for frame 1, then the previous frame's signature."""
    message = (b"AGADIR1-FRAME\n" + previous + struct.pack(">QB", index, 1 if end_stream else 0)
               + hashlib.sha256(payload).digest())
    return hmac.new(secret_key.encode("utf-8"), message, hashlib.sha256).digest()


def signed_body_frames(request_id, secret_key, request_signature, payloads):
    """DATA frames carrying payloads, the last with END_STREAM, each with its FRAME_SIGNATURE."""
    out, previous = [], request_signature
    for i, payload in enumerate(payloads):
        end = i == len(payloads) - 1
        previous = frame_signature(secret_key, previous, i + 1, end, payload)
        out.append(encode_frame(DATA, request_id, 0, 0, [(T_FRAME_SIGNATURE, previous)], payload, end))
    return out


def read_credentials(path):
    """(access_key, secret_key) from a credentials file (`name = value` lines)."""
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or line.startswith("["):
                continue
            name, _, value = line.partition("=")
            values[name.strip().lower()] = value.strip()
    return values["access_key"], values["secret_key"]


def read_ca_file(path):
    """The `ca_file` a credentials file names, or None."""
    with open(path) as f:
        for line in f:
            name, _, value = line.strip().partition("=")
            if name.strip().lower() == "ca_file" and value.strip():
                return value.strip()
    return None


def f_str(tag, s):
    return (tag, s.encode("utf-8"))


def f_u32(tag, v):
    return (tag, struct.pack(">I", v))


def f_u64(tag, v):
    return (tag, struct.pack(">Q", v))


def f_metadata(name, value):
    n = name.encode("utf-8")
    return (T_METADATA, struct.pack(">H", len(n)) + n + value.encode("utf-8"))


def put_request_fields(bucket, key, size, content_type=None, metadata=None, content_sha256=None):
    fields = [f_str(T_BUCKET, bucket), f_str(T_KEY, key), f_u64(T_SIZE, size)]
    if content_type is not None:
        ct = content_type.encode("utf-8")
        if len(ct) > MAX_CONTENT_TYPE_BYTES:
            raise ValueError("content type longer than 256 bytes")
        fields.append((T_CONTENT_TYPE, ct))
    # a dict, or a list of (name, value) pairs (to send a name twice)
    pairs = metadata.items() if isinstance(metadata, dict) else (metadata or [])
    for name, value in pairs:
        fields.append(f_metadata(name, value))
    if content_sha256 is not None:
        if len(content_sha256) != 32:
            raise ValueError("CONTENT_SHA256 must be 32 bytes")
        fields.append((T_CONTENT_SHA256, bytes(content_sha256)))
    return fields


def f_consistency(fields, level):
    """fields plus CONSISTENCY (u8) when level is not None."""
    if level is None:
        return fields
    return list(fields) + [(T_CONSISTENCY, struct.pack(">B", level))]


def get_request_fields(bucket, key, range=None):
    fields = [f_str(T_BUCKET, bucket), f_str(T_KEY, key)]
    if range is not None:
        offset, length = range
        if length is None:
            length = RANGE_TO_END
        fields.append((T_RANGE, struct.pack(">QQ", offset, length)))
    return fields


# ---------------------------------------------------------------- decoding

class Frame:
    __slots__ = ("kind", "flags", "opcode", "status", "request_id", "fields", "payload")

    def __init__(self, kind, flags, opcode, status, request_id, fields, payload):
        self.kind, self.flags, self.opcode, self.status = kind, flags, opcode, status
        self.request_id, self.fields, self.payload = request_id, fields, payload

    @property
    def end_stream(self):
        return bool(self.flags & END_STREAM)

    def first(self, tag):
        for t, v in self.fields:
            if t == tag:
                return v
        return None

    def all(self, tag):
        return [v for t, v in self.fields if t == tag]

    def message(self):
        v = self.first(T_MESSAGE)
        return v.decode("utf-8", "replace") if v is not None else ""


def decode_fields(section, max_fields, request_id=None):
    if len(section) == 0:
        return []
    if len(section) < 2:
        raise ProtocolViolation("fields section of %d byte(s)" % len(section), request_id)
    (count,) = struct.unpack_from(">H", section, 0)
    if count > max_fields:
        raise ProtocolViolation("%d fields > limit %d" % (count, max_fields), request_id)
    pos = 2
    fields = []
    for _ in range(count):
        if pos + 4 > len(section):
            raise ProtocolViolation("field header past end of section", request_id)
        tag, length = struct.unpack_from(">HH", section, pos)
        pos += 4
        if pos + length > len(section):
            raise ProtocolViolation("field %d length %d past end of section" % (tag, length), request_id)
        fields.append((tag, bytes(section[pos:pos + length])))
        pos += length
    if pos != len(section):
        raise ProtocolViolation("%d trailing bytes after fields" % (len(section) - pos), request_id)
    return fields


def _exact(value, n, name, rid):
    if value is None:
        raise ProtocolViolation("missing field %s" % name, rid)
    if len(value) != n:
        raise ProtocolViolation("field %s has %d bytes, expected %d" % (name, len(value), n), rid)
    return value


def d_u64(frame, tag, name, required=True):
    v = frame.first(tag)
    if v is None and not required:
        return None
    return struct.unpack(">Q", _exact(v, 8, name, frame.request_id))[0]


def d_str(frame, tag, name, required=True):
    v = frame.first(tag)
    if v is None:
        if required:
            raise ProtocolViolation("missing field %s" % name, frame.request_id)
        return None
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation("field %s is not UTF-8" % name, frame.request_id)


def d_id(frame, tag, name, required=True):
    v = frame.first(tag)
    if v is None and not required:
        return None
    return _exact(v, 32, name, frame.request_id)


def d_version(frame, required=True):
    v = frame.first(T_VERSION)
    if v is None and not required:
        return None
    return struct.unpack(">QQ", _exact(v, 16, "VERSION", frame.request_id))


def format_version(v):
    return "%016x-%016x" % v


def d_metadata(frame):
    md = {}
    entries = frame.all(T_METADATA)
    if len(entries) > MAX_METADATA_ENTRIES:
        raise ProtocolViolation("%d metadata entries > 64" % len(entries), frame.request_id)
    total = 0
    for raw in entries:
        if len(raw) < 2:
            raise ProtocolViolation("METADATA entry shorter than 2 bytes", frame.request_id)
        (nlen,) = struct.unpack_from(">H", raw, 0)
        if 2 + nlen > len(raw):
            raise ProtocolViolation("METADATA name length past end", frame.request_id)
        try:
            name = raw[2:2 + nlen].decode("utf-8")
            value = raw[2 + nlen:].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("METADATA not UTF-8", frame.request_id)
        total += len(raw) - 2
        if name in md:
            raise ProtocolViolation("duplicate METADATA name %r" % name, frame.request_id)
        md[name] = value
    if total > MAX_METADATA_BYTES:
        raise ProtocolViolation("metadata of %d bytes > 8192" % total, frame.request_id)
    return md


class Reader:
    """Cursor over a response body."""

    def __init__(self, data, what):
        self.data, self.pos, self.what = data, 0, what

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ProtocolViolation("%s body truncated" % self.what)
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def string16(self):
        (n,) = struct.unpack(">H", self.take(2))
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("%s body: string not UTF-8" % self.what)

    def done(self):
        if self.pos != len(self.data):
            raise ProtocolViolation("%s body: %d trailing bytes" % (self.what, len(self.data) - self.pos))


def decode_list_page(body):
    """A LIST page body (docs/protocol.md, "Response bodies") as a dict."""
    r = Reader(body, "LIST")
    objects = []
    n = r.u32()
    if n > MAX_LIST_LIMIT:
        raise ProtocolViolation("LIST page with %d keys > 1000" % n)
    for _ in range(n):
        k = r.string16()
        size = r.u64()
        etag = r.take(32)
        ver = (r.u64(), r.u64())
        ct = r.string16()
        objects.append({"key": k, "size": size, "etag": etag, "version": ver, "content_type": ct})
    m = r.u32()
    if n + m > MAX_LIST_LIMIT:
        raise ProtocolViolation("LIST page with %d entries > 1000" % (n + m))
    prefixes = [r.string16() for _ in range(m)]
    truncated = r.u8()
    if truncated not in (0, 1):
        raise ProtocolViolation("LIST truncated byte %d" % truncated)
    nxt = r.string16()
    r.done()
    if not truncated and nxt:
        raise ProtocolViolation("nextStartAfter set on a non-truncated page")
    return {"objects": objects, "common_prefixes": prefixes,
            "truncated": bool(truncated), "next_start_after": nxt}


# ---------------------------------------------------------------- client

class AgadirClient:
    def __init__(self, timeout=30.0, max_header_bytes=DEFAULT_MAX_HEADER_BYTES,
                 max_field_count=DEFAULT_MAX_FIELD_COUNT, max_payload_bytes=DEFAULT_MAX_PAYLOAD_BYTES,
                 data_frame_bytes=DEFAULT_MAX_PAYLOAD_BYTES):
        self.timeout = timeout
        self.max_header_bytes = max_header_bytes
        self.max_field_count = max_field_count
        self.max_payload_bytes = max_payload_bytes
        self.data_frame_bytes = min(data_frame_bytes, max_payload_bytes)
        self.sock = None
        self._rx = bytearray()
        self._next_id = 1
        self._ignored_ids = set()  # requests we aborted: late frames are dropped
        self.last_stats = {}  # frames sent/received by the last call (for tests)
        self.credentials = None  # (access_key, secret_key): every request is then signed
        self.ca_file = None  # the cluster CA's certificate: connections are then TLS 1.3

    # -- connection

    def connect(self, host, port):
        self.close()
        s = socket.create_connection((host, port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ca_file is not None:
            # "TLS" in docs/protocol.md: TLS 1.3 only, the cluster CA alone, the host dialed
            # checked (an IP address against the certificate's addresses, without SNI).
            ctx = ssl.create_default_context(cafile=self.ca_file)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            s = ctx.wrap_socket(s, server_hostname=host)
        s.settimeout(self.timeout)
        self.sock = s
        self._rx = bytearray()
        self._next_id = 1
        self._ignored_ids = set()
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def signed(self, opcode, fields):
        """fields signed with this client's credentials (unchanged without any)."""
        if self.credentials is None:
            return fields
        return sign_fields(opcode, fields, *self.credentials)

    def _new_id(self):
        rid = self._next_id
        self._next_id += 1
        if self._next_id > 0xFFFFFFFFFFFFFFFF:
            self._next_id = 1
        return rid

    # -- low-level I/O

    def _fill(self, n, deadline):
        """Read until the receive buffer holds at least n bytes."""
        while len(self._rx) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out waiting for the node")
            self.sock.settimeout(min(self.timeout, remaining))
            chunk = self.sock.recv(max(65536, n - len(self._rx)))
            if not chunk:
                self.close()
                raise AgadirError(506, "connection closed by the node")
            self._rx += chunk
        self.sock.settimeout(self.timeout)

    def _try_parse_frame(self):
        """Parse one frame from the buffer if complete; validate the header first."""
        if len(self._rx) < 32:
            return None
        magic, version, kind, flags, opcode, status, h, rid, p, reserved = HEADER.unpack_from(self._rx, 0)
        if magic != MAGIC:
            raise ProtocolViolation("bad magic %r" % bytes(magic))
        if version != PROTOCOL_VERSION:
            raise ProtocolViolation("protocol version %d" % version)
        if kind not in (RESPONSE, DATA, ABORT):
            raise ProtocolViolation("frame kind %d from a node" % kind, rid)
        if flags & ~END_STREAM:
            raise ProtocolViolation("flags 0x%04x" % flags, rid)
        if reserved != 0:
            raise ProtocolViolation("reserved 0x%08x" % reserved, rid)
        if h > self.max_header_bytes:
            raise ProtocolViolation("fields section %d > %d" % (h, self.max_header_bytes), rid)
        if p > self.max_payload_bytes:
            raise ProtocolViolation("payload %d > %d" % (p, self.max_payload_bytes), rid)
        if kind in (DATA, ABORT) and opcode != 0:
            raise ProtocolViolation("opcode %d in kind %d" % (opcode, kind), rid)
        if kind == DATA and status != 0:
            raise ProtocolViolation("status %d in DATA" % status, rid)
        if kind == DATA and h != 0:
            raise ProtocolViolation("DATA frame with fields (H=%d)" % h, rid)
        if kind == ABORT and not (flags & END_STREAM):
            raise ProtocolViolation("ABORT without END_STREAM", rid)
        if kind == ABORT and status == 0:
            raise ProtocolViolation("ABORT with status 0", rid)
        if kind == RESPONSE and status != 0 and not (flags & END_STREAM):
            raise ProtocolViolation("error RESPONSE without END_STREAM", rid)
        if len(self._rx) < 32 + h + p:
            return None
        section = bytes(self._rx[32:32 + h])
        payload = bytes(self._rx[32 + h:32 + h + p])
        del self._rx[:32 + h + p]
        fields = decode_fields(section, self.max_field_count, rid)
        frame = Frame(kind, flags, opcode, status, rid, fields, payload)
        if rid == 0:
            msg = frame.message()
            self.close()
            raise ConnectionLevelError(status, msg, 0, fields)
        return frame

    def _read_frame(self, deadline):
        for _ in range(3):  # header, then the rest; a third pass is never needed
            f = self._try_parse_frame()
            if f is not None:
                return f
            if len(self._rx) < 32:
                self._fill(32, deadline)
            else:
                h, p = struct.unpack_from(">I", self._rx, 12)[0], struct.unpack_from(">I", self._rx, 24)[0]
                self._fill(32 + h + p, deadline)
        f = self._try_parse_frame()
        if f is None:
            raise ProtocolViolation("could not assemble a frame")
        return f

    def _read_frame_for(self, rid, deadline):
        """Next frame for request rid; frames of requests we aborted are dropped."""
        for _ in range(100000):
            f = self._read_frame(deadline)
            if f.request_id == rid:
                return f
            if f.request_id in self._ignored_ids:
                if f.end_stream:
                    self._ignored_ids.discard(f.request_id)
                continue
            raise ProtocolViolation("frame for unknown request id %d" % f.request_id, f.request_id)
        raise ProtocolViolation("too many unrelated frames")

    def _send_all_watching(self, data, rid, deadline):
        """Send one whole frame; while sending, read frames. Returns an early frame for
        rid (the answer arrived before the request was fully sent), or None. The frame
        is always sent completely: stopping inside a frame would corrupt the stream."""
        view = memoryview(data)
        sent = 0
        early = None
        while sent < len(view):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out sending to the node")
            watch = [self.sock] if early is None else []
            r, w, _ = select.select(watch, [self.sock], [], min(remaining, self.timeout))
            if not r and not w:
                raise socket.timeout("socket neither readable nor writable")
            if r:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.close()
                    raise AgadirError(506, "connection closed by the node")
                self._rx += chunk
                for _ in range(1000):
                    f = self._try_parse_frame()
                    if f is None:
                        break
                    if f.request_id == rid:
                        early = f
                        break
                    if f.request_id in self._ignored_ids:
                        if f.end_stream:
                            self._ignored_ids.discard(f.request_id)
                        continue
                    raise ProtocolViolation("frame for unknown request id %d" % f.request_id)
            if w:
                sent += self.sock.send(view[sent:sent + 262144])
        return early

    # -- request / response

    def _request(self, opcode, fields, body=b"", max_body=DEFAULT_MAX_SMALL_BODY_BYTES, deadline_s=None):
        """Send one request, return (RESPONSE frame, body bytes). Raises AgadirError."""
        if self.sock is None:
            raise AgadirError(506, "not connected")
        rid = self._new_id()
        fields = self.signed(opcode, fields)
        deadline = time.monotonic() + (deadline_s if deadline_s is not None else max(self.timeout, 30.0))
        stats = {"sent_frames": 0, "sent_data_frames": 0, "recv_frames": 0, "recv_data_frames": 0}
        self.last_stats = stats
        early = None
        if len(body) <= self.data_frame_bytes:
            frame = encode_frame(REQUEST, rid, opcode, 0, fields, body, end_stream=True)
            stats["sent_frames"] += 1
            early = self._send_all_watching(frame, rid, deadline)
        else:
            frame = encode_frame(REQUEST, rid, opcode, 0, fields, b"", end_stream=False)
            stats["sent_frames"] += 1
            early = self._send_all_watching(frame, rid, deadline)
            pos, n = 0, len(body)
            while early is None and pos < n:
                piece = body[pos:pos + self.data_frame_bytes]
                pos += len(piece)
                last = pos >= n
                stats["sent_frames"] += 1
                stats["sent_data_frames"] += 1
                early = self._send_all_watching(
                    encode_frame(DATA, rid, 0, 0, None, piece, end_stream=last), rid, deadline)
                if early is not None and not last:
                    # the node answered before the body was complete: stop and ABORT
                    self._send_abort(rid, 200, "client stops sending: node already answered")
        first = early if early is not None else self._read_frame_for(rid, deadline)
        stats["recv_frames"] += 1
        if first.kind == ABORT:
            raise AgadirError(first.status, first.message(), rid, first.fields)
        if first.kind != RESPONSE:
            raise ProtocolViolation("first frame of the answer is kind %d" % first.kind, rid)
        if first.opcode != opcode:
            raise ProtocolViolation("opcode %d echoed for request opcode %d" % (first.opcode, opcode), rid)
        if first.status != 0:
            raise AgadirError(first.status, first.message(), rid, first.fields)
        parts = [first.payload]
        total = len(first.payload)
        if total > max_body:
            raise ProtocolViolation("response body over %d bytes" % max_body, rid)
        done = first.end_stream
        for _ in range(max_body + 2):  # each non-final frame should add >= 1 byte
            if done:
                break
            f = self._read_frame_for(rid, deadline)
            stats["recv_frames"] += 1
            if f.kind == ABORT:
                # discard the partial body
                parts = None
                raise AgadirError(f.status, f.message(), rid, f.fields)
            if f.kind != DATA:
                raise ProtocolViolation("kind %d inside a response stream" % f.kind, rid)
            stats["recv_data_frames"] += 1
            total += len(f.payload)
            if total > max_body:
                raise ProtocolViolation("response body over %d bytes" % max_body, rid)
            parts.append(f.payload)
            done = f.end_stream
        if not done:
            raise ProtocolViolation("response stream never ended", rid)
        return first, b"".join(parts)

    def _send_abort(self, rid, status, message):
        frame = encode_frame(ABORT, rid, 0, status, [f_str(T_MESSAGE, message)], b"", end_stream=True)
        self.sock.sendall(frame)

    # -- operations

    def ping(self):
        f, _ = self._request(OP_PING, [], max_body=0)
        t = d_u64(f, T_TIME_MS, "TIME_MS")
        return {"node_id": d_str(f, T_NODE_ID, "NODE_ID"),
                "server_version": d_str(f, T_SERVER_VERSION, "SERVER_VERSION"),
                "time_ms": t}

    def create_bucket(self, name, policy=None):
        fields = [f_str(T_BUCKET, name)]
        if policy is not None:
            fields.append(f_str(T_POLICY, policy))
        self._request(OP_CREATE_BUCKET, fields, max_body=0)

    def delete_bucket(self, name):
        self._request(OP_DELETE_BUCKET, [f_str(T_BUCKET, name)], max_body=0)

    def list_buckets(self):
        _, body = self._request(OP_LIST_BUCKETS, [])
        r = Reader(body, "LIST_BUCKETS")
        out = []
        for _ in range(r.u32()):
            out.append({"name": r.string16(), "policy": r.string16(), "created_ms": r.u64()})
        r.done()
        return out

    def members(self):
        _, body = self._request(OP_MEMBERS, [])
        r = Reader(body, "MEMBERS")
        n = r.u32()
        if n > MAX_MEMBERS:
            raise ProtocolViolation("MEMBERS body claims %d members" % n)
        out = []
        for _ in range(n):
            m = {"node_id": r.string16(), "site": r.string16()}
            labels = {}
            count = r.u16()
            if count > MAX_MEMBER_LABELS:
                raise ProtocolViolation("MEMBERS: %d labels" % count)
            names = []
            for _ in range(count):
                name = r.string16()
                if name in labels:
                    raise ProtocolViolation("MEMBERS: label %r repeated" % name)
                labels[name] = r.string16()
                names.append(name.encode("utf-8"))
            if names != sorted(names):
                raise ProtocolViolation("MEMBERS: labels not sorted by name")
            m["labels"] = labels
            m["client_address"], m["peer_address"] = r.string16(), r.string16()
            m["incarnation"], m["state"], m["layout_version"] = r.u64(), r.string16(), r.u64()
            m["last_contact_ms_ago"] = r.i64()
            if not m["state"] or m["last_contact_ms_ago"] < -1:
                raise ProtocolViolation("MEMBERS: bad state %r or last contact %d" % (m["state"], m["last_contact_ms_ago"]))
            out.append(m)
        r.done()
        return out

    def put(self, bucket, key, data, content_type=None, metadata=None, content_sha256=False, size=None,
            consistency=None):
        """content_sha256: False = omit, True = send SHA-256 of data, bytes = send these 32 bytes.
        size: the SIZE announced (default len(data)); consistency: a CONSISTENCY level or None."""
        data = bytes(data)
        if content_sha256 is True:
            sha = hashlib.sha256(data).digest()
        elif content_sha256 is False or content_sha256 is None:
            sha = None
        else:
            sha = bytes(content_sha256)
        fields = put_request_fields(bucket, key, len(data) if size is None else size, content_type, metadata, sha)
        fields = f_consistency(fields, consistency)
        deadline_s = max(self.timeout, 30.0 + len(data) / (5 * 1024 * 1024))
        f, _ = self._request(OP_PUT, fields, data, max_body=0, deadline_s=deadline_s)
        return {"etag": d_id(f, T_ETAG, "ETAG"), "version": d_version(f),
                "size": d_u64(f, T_SIZE, "SIZE")}

    def _object_fields(self, f):
        ct = d_str(f, T_CONTENT_TYPE, "CONTENT_TYPE", required=False)
        if ct is not None and len(ct.encode("utf-8")) > MAX_CONTENT_TYPE_BYTES:
            raise ProtocolViolation("CONTENT_TYPE over 256 bytes", f.request_id)
        key = d_str(f, T_KEY, "KEY")
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise ProtocolViolation("KEY over 1024 bytes", f.request_id)
        return {"bucket": d_str(f, T_BUCKET, "BUCKET"), "key": key,
                "size": d_u64(f, T_SIZE, "SIZE"), "etag": d_id(f, T_ETAG, "ETAG"),
                "version": d_version(f), "content_type": ct, "metadata": d_metadata(f)}

    def get(self, bucket, key, range=None, verify=True, max_size=1 << 34, consistency=None):
        """range: None or (offset, length) with length None = to the end.
        Returns a dict with the object's fields and 'data'."""
        fields = f_consistency(get_request_fields(bucket, key, range), consistency)
        f, body = self._request(OP_GET, fields, max_body=max_size,
                                deadline_s=max(self.timeout, 120.0))
        info = self._object_fields(f)
        rr = f.first(T_RANGE)
        if range is not None:
            off, length = struct.unpack(">QQ", _exact(rr, 16, "RANGE", f.request_id))
            info["range"] = (off, length)
            expect = info["size"] - off if length == RANGE_TO_END else length
            if off > info["size"] or off + expect > info["size"]:
                raise ProtocolViolation("resolved range %r outside size %d" % ((off, length), info["size"]))
        else:
            expect = info["size"]
        if len(body) != expect:
            raise ProtocolViolation("GET body %d bytes, expected %d" % (len(body), expect), f.request_id)
        if verify and range is None and hashlib.sha256(body).digest() != info["etag"]:
            raise ProtocolViolation("GET body does not hash to ETAG", f.request_id)
        info["data"] = body
        return info

    def head(self, bucket, key, consistency=None):
        fields = f_consistency([f_str(T_BUCKET, bucket), f_str(T_KEY, key)], consistency)
        f, _ = self._request(OP_HEAD, fields, max_body=0)
        return self._object_fields(f)

    def delete(self, bucket, key, consistency=None):
        fields = f_consistency([f_str(T_BUCKET, bucket), f_str(T_KEY, key)], consistency)
        f, _ = self._request(OP_DELETE, fields, max_body=0)
        return {"version": d_version(f), "size": d_u64(f, T_SIZE, "SIZE", required=False)}

    def list(self, bucket, prefix="", delimiter=None, start_after=None, limit=None, consistency=None):
        fields = [f_str(T_BUCKET, bucket)]
        if prefix:
            fields.append(f_str(T_PREFIX, prefix))
        if delimiter is not None:
            if not 1 <= len(delimiter.encode("utf-8")) <= 16:
                raise ValueError("DELIMITER must be 1-16 bytes")
            fields.append(f_str(T_DELIMITER, delimiter))
        if start_after is not None:
            fields.append(f_str(T_START_AFTER, start_after))
        if limit is not None:
            if not 1 <= limit <= MAX_LIST_LIMIT:
                raise ValueError("LIMIT must be 1-1000")
            fields.append(f_u32(T_LIMIT, limit))
        _, body = self._request(OP_LIST, f_consistency(fields, consistency))
        return decode_list_page(body)

    def list_all(self, bucket, prefix="", delimiter=None, limit=None, max_pages=100000):
        objects, prefixes, pages = [], [], 0
        start = None
        for _ in range(max_pages):
            page = self.list(bucket, prefix, delimiter, start, limit)
            pages += 1
            objects += page["objects"]
            prefixes += page["common_prefixes"]
            if not page["truncated"]:
                return objects, prefixes, pages
            start = page["next_start_after"]
        raise ProtocolViolation("LIST did not finish in %d pages" % max_pages)

    def stat(self):
        _, body = self._request(OP_STAT, [])
        try:
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ProtocolViolation("STAT body is not UTF-8 JSON: %s" % e)
        if not isinstance(obj, dict):
            raise ProtocolViolation("STAT body is not a JSON object")
        return obj

    def route(self, bucket):
        """ROUTE: the bucket's POLICY, MAY_COORDINATE and the ADDRESS fields (best first)."""
        f, _ = self._request(OP_ROUTE, [f_str(T_BUCKET, bucket)], max_body=0)
        may = _exact(f.first(T_MAY_COORDINATE), 1, "MAY_COORDINATE", f.request_id)[0]
        if may not in (0, 1):
            raise ProtocolViolation("MAY_COORDINATE %d" % may, f.request_id)
        addresses = []
        for raw in f.all(T_ADDRESS):
            try:
                addresses.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolViolation("ADDRESS not UTF-8", f.request_id)
        if len(addresses) > 64:
            raise ProtocolViolation("ROUTE with %d ADDRESS fields > 64" % len(addresses), f.request_id)
        return {"policy": d_str(f, T_POLICY, "POLICY"), "may_coordinate": may == 1, "addresses": addresses}

    # -- several requests in flight on the connection

    def request_frames(self, rid, opcode, fields, body=b"", end_stream=True, data_frame_bytes=None):
        """The frames of one request with id rid, signed: a REQUEST carrying the whole body
        when it fits in one frame, else an empty REQUEST and DATA frames, the last with
        END_STREAM. end_stream=False leaves the body open (no END_STREAM anywhere)."""
        fields = self.signed(opcode, fields)
        step = data_frame_bytes or self.data_frame_bytes
        if len(body) <= step:
            return [encode_frame(REQUEST, rid, opcode, 0, fields, body, end_stream=end_stream)]
        frames = [encode_frame(REQUEST, rid, opcode, 0, fields, b"", end_stream=False)]
        for pos in range(0, len(body), step):
            piece = body[pos:pos + step]
            last = pos + step >= len(body)
            frames.append(encode_frame(DATA, rid, 0, 0, None, piece, end_stream=last and end_stream))
        return frames

    def exchange(self, frames, ids, deadline_s=60.0):
        """Sends frames (encoded, in this order) while reading, until every request id of
        ids has received the END_STREAM (or ABORT) of its answer. Returns {id: [frames]}.
        A frame for an id outside ids is a ProtocolViolation; a connection-level error
        (request id 0) raises ConnectionLevelError."""
        deadline = time.monotonic() + deadline_s
        answers = {rid: [] for rid in ids}
        open_ids = set(ids)
        out = memoryview(b"".join(frames))
        sent = 0
        for _ in range(10000000):
            if not open_ids and sent >= len(out):
                return answers
            for _ in range(100000):
                f = self._try_parse_frame()
                if f is None:
                    break
                if f.request_id not in answers:
                    raise ProtocolViolation("frame for unknown request id %d" % f.request_id, f.request_id)
                if f.request_id not in open_ids:
                    raise ProtocolViolation("frame after the END_STREAM of request %d" % f.request_id, f.request_id)
                answers[f.request_id].append(f)
                if f.end_stream:
                    open_ids.discard(f.request_id)
            if not open_ids and sent >= len(out):
                return answers
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out: no answer yet for request(s) %s" % sorted(open_ids))
            wants_write = sent < len(out)
            r, w, _ = select.select([self.sock], [self.sock] if wants_write else [], [],
                                    min(remaining, self.timeout))
            if not r and not w:
                raise socket.timeout("socket neither readable nor writable")
            if r:
                chunk = self.sock.recv(262144)
                if not chunk:
                    self.close()
                    raise AgadirError(506, "connection closed by the node")
                self._rx += chunk
            if w and wants_write:
                sent += self.sock.send(out[sent:sent + 262144])
        raise ProtocolViolation("exchange did not end")

    @staticmethod
    def answer(opcode, frames, rid=None):
        """(first frame, body) of one answer collected by exchange; raises AgadirError
        for an error RESPONSE or an ABORT (the partial body is discarded)."""
        if not frames:
            raise ProtocolViolation("no answer", rid)
        first = frames[0]
        if first.kind == ABORT:
            raise AgadirError(first.status, first.message(), first.request_id, first.fields)
        if first.kind != RESPONSE:
            raise ProtocolViolation("first frame of the answer is kind %d" % first.kind, first.request_id)
        if first.opcode != opcode:
            raise ProtocolViolation("opcode %d echoed for request opcode %d" % (first.opcode, opcode),
                                    first.request_id)
        if first.status != 0:
            raise AgadirError(first.status, first.message(), first.request_id, first.fields)
        parts = [first.payload]
        for f in frames[1:]:
            if f.kind == ABORT:
                raise AgadirError(f.status, f.message(), f.request_id, f.fields)
            if f.kind != DATA:
                raise ProtocolViolation("kind %d inside a response stream" % f.kind, f.request_id)
            parts.append(f.payload)
        if not frames[-1].end_stream:
            raise ProtocolViolation("response stream never ended", first.request_id)
        return first, b"".join(parts)


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)
