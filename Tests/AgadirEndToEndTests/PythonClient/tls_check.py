#!/usr/bin/env python3
"""TLS against a node with a certificate, from docs/protocol.md ("Transport", "TLS") alone:
the stdlib's ssl module with the cluster CA from the credentials file (`ca_file`) reaches
the node; a clear-text connection gets the documented connection-level error frame.
Exits 0 only if every check passes."""

import argparse
import socket
import struct
import sys

import agadir_client as ac


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("address")
    ap.add_argument("--credentials", required=True)
    args = ap.parse_args()
    host, port = ac.parse_hostport(args.address)
    ca = ac.read_ca_file(args.credentials)
    failures = []

    def check(name, ok, detail=""):
        print("%s %s %s" % ("PASS" if ok else "FAIL", name, detail))
        if not ok:
            failures.append(name)

    check("credentials name the CA", ca is not None, str(ca))
    c = ac.AgadirClient(timeout=20)
    c.credentials = ac.read_credentials(args.credentials)
    c.ca_file = ca
    c.connect(host, port)
    check("TLS 1.3 negotiated", c.sock.version() == "TLSv1.3", c.sock.version())
    c.ping()
    c.create_bucket("tls-python")
    body = bytes(range(256)) * 400
    c.put("tls-python", "k", body)
    got = c.get("tls-python", "k")["data"]
    check("PUT then GET over TLS", got == body, "%d bytes" % len(got))
    c.close()

    # Clear text: one error frame (request id 0, UNAUTHENTICATED), then the close.
    raw = socket.create_connection((host, port), timeout=10)
    raw.sendall(ac.encode_frame(ac.REQUEST, 1, ac.OP_PING, 0, [], b"", end_stream=True))
    data = b""
    while True:
        chunk = raw.recv(65536)
        if not chunk:
            break
        data += chunk
    raw.close()
    ok = len(data) >= 32
    rid = struct.unpack_from(">Q", data, 16)[0] if ok else None
    status = struct.unpack_from(">H", data, 10)[0] if ok else None
    check("clear text refused with a frame", ok and rid == 0 and status == 109 and b"requires TLS" in data,
          "request id %s, status %s" % (rid, status))
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
