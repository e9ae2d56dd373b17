#!/usr/bin/env python3
"""Conformance checks of an Agadir cluster against docs/protocol.md: ROUTE, REDIRECT,
CONSISTENCY levels, NOT_ENOUGH_REPLICAS, and an ABORT with CORRUPT_CHUNK in the middle of
a GET. Written from the document alone, like conformance.py.

The cluster: the nodes of --eligible are every node of the sites of policy POLICY (each
holds a replica of every object of the bucket: the replication factor equals their
number, 3), the node of --foreign is outside that policy. The harness runs one phase at
a time and causes the faults between phases:

  healthy   every node up: ROUTE, REDIRECT, every CONSISTENCY level; writes the
            multi-chunk object the corrupt phase reads, and describes it in --state
  one-down  one eligible node (--down) stopped: ALL and EACH_QUORUM refused with
            NOT_ENOUGH_REPLICAS, QUORUM, LOCAL_QUORUM and ONE served
  two-down  two eligible nodes stopped: QUORUM refused too, ONE served
  corrupt   every copy of a later chunk of that object damaged on disk: the GET starts,
            then ends with ABORT CORRUPT_CHUNK

usage: cluster_conformance.py --phase PHASE --credentials FILE --bucket NAME --state FILE
         --coordinator NAME --eligible NAME=HOST:PORT,... --foreign NAME=HOST:PORT [--down NAME,...]
Prints one line per check and "N passed, M failed"; exit 0 iff M == 0.
"""

import argparse
import hashlib
import json
import os
import re
import sys

import agadir_client as ac
from conformance import Checker, expect, expect_code

MiB = 1024 * 1024
LEVELS = {"ONE": ac.ONE, "QUORUM": ac.QUORUM, "LOCAL_QUORUM": ac.LOCAL_QUORUM, "EACH_QUORUM": ac.EACH_QUORUM,
          "ALL": ac.ALL}
CORRUPT_KEY = "corrupt/multi-chunk"
CORRUPT_SIZE = 8 * MiB + 4321


def seeded_bytes(seed, n):
    """n incompressible bytes determined by seed (SHA-256 in counter mode)."""
    out = bytearray()
    for i in range((n + 31) // 32):
        out += hashlib.sha256(b"%s-%d" % (seed.encode(), i)).digest()
    return bytes(out[:n])


def parse_nodes(text):
    nodes = {}
    for item in filter(None, (text or "").split(",")):
        name, _, endpoint = item.partition("=")
        nodes[name] = endpoint
    return nodes


def expect_not_enough(level_name, needed, answered_below, fn, *a, **kw):
    """fn must fail with 507 NOT_ENOUGH_REPLICAS carrying ANSWERED and NEEDED (u32):
    NEEDED == needed (when given), ANSWERED < NEEDED and ANSWERED <= answered_below."""
    try:
        fn(*a, **kw)
    except ac.AgadirError as e:
        expect(e.code == 507, "%s: expected 507, got %d (%s)" % (level_name, e.code, e.message))
        expect(e.message, "no MESSAGE")
        got_answered, got_needed = e.u32(ac.T_ANSWERED), e.u32(ac.T_NEEDED)
        expect(got_answered is not None and got_needed is not None,
               "%s: ANSWERED %r, NEEDED %r" % (level_name, got_answered, got_needed))
        if needed is not None:
            expect(got_needed == needed, "%s: NEEDED %d, expected %d" % (level_name, got_needed, needed))
        expect(got_answered < got_needed, "%s: ANSWERED %d >= NEEDED %d" % (level_name, got_answered, got_needed))
        expect(got_answered <= answered_below, "%s: ANSWERED %d > %d replicas up" % (
            level_name, got_answered, answered_below))
        return "507, ANSWERED %d, NEEDED %d: %s" % (got_answered, got_needed, e.message)
    raise AssertionError("%s: expected 507, call succeeded" % level_name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", required=True, choices=["healthy", "one-down", "two-down", "corrupt"])
    ap.add_argument("--credentials", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--policy", default="ma")
    ap.add_argument("--state", required=True, help="JSON file the healthy phase writes for the harness")
    ap.add_argument("--coordinator", required=True, help="the eligible node the requests go to")
    ap.add_argument("--eligible", required=True, help="NAME=HOST:PORT,... nodes of the policy's sites")
    ap.add_argument("--foreign", required=True, help="NAME=HOST:PORT of a node outside the policy")
    ap.add_argument("--down", default="", help="NAME,... eligible nodes the harness stopped")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    eligible = parse_nodes(args.eligible)
    foreign_name, foreign = next(iter(parse_nodes(args.foreign).items()))
    down = set(filter(None, args.down.split(",")))
    up = [n for n in eligible if n not in down]
    rf = len(eligible)  # every eligible node holds every object: RF = their number
    credentials = ac.read_credentials(args.credentials)
    ca_file = ac.read_ca_file(args.credentials)
    bucket = args.bucket
    ck = Checker()

    def client(endpoint):
        c = ac.AgadirClient(timeout=args.timeout)
        c.credentials = credentials
        c.ca_file = ca_file
        c.connect(*ac.parse_hostport(endpoint))
        return c

    coord = client(eligible[args.coordinator])

    if args.phase == "healthy":
        healthy(ck, args, coord, client, eligible, foreign_name, foreign, rf)
    elif args.phase == "one-down":
        one_down(ck, coord, bucket, rf, len(up))
    elif args.phase == "two-down":
        two_down(ck, coord, bucket, rf, len(up))
    else:
        corrupt(ck, args, coord)
    coord.close()
    print("%d passed, %d failed" % (ck.passed, ck.failed))
    return 0 if ck.failed == 0 else 1


def healthy(ck, args, coord, client, eligible, foreign_name, foreign, rf):
    bucket = args.bucket
    inside = set(eligible.values())
    ck.check("CREATE_BUCKET with a policy the layout lacks -> 305",
             lambda: expect_code(305, coord.create_bucket, bucket, "no-such-policy"))

    def create():
        coord.create_bucket(bucket, args.policy)
        return "%s on policy %s" % (bucket, args.policy)

    ck.check("create the bucket on the policy", create)

    # ---- ROUTE
    def route_inside():
        out = []
        for name, endpoint in eligible.items():
            c = client(endpoint)
            try:
                r = c.route(bucket)
            finally:
                c.close()
            expect(r["policy"] == args.policy, "%s: POLICY %r" % (name, r["policy"]))
            expect(r["may_coordinate"], "%s may not coordinate" % name)
            expect(r["addresses"], "%s: no ADDRESS" % name)
            expect(set(r["addresses"]) <= inside, "%s: ADDRESS outside the policy: %r" % (name, r["addresses"]))
            expect(foreign not in r["addresses"], "%s names %s" % (name, foreign_name))
            out.append("%s: %d addresses" % (name, len(r["addresses"])))
        return "; ".join(out)

    ck.check("ROUTE on a node of the policy: POLICY, MAY_COORDINATE 1, ADDRESS of eligible nodes", route_inside)

    def route_outside():
        c = client(foreign)
        try:
            r = c.route(bucket)
        finally:
            c.close()
        expect(r["policy"] == args.policy, "POLICY %r" % r["policy"])
        expect(not r["may_coordinate"], "%s says it may coordinate" % foreign_name)
        expect(r["addresses"], "no ADDRESS")
        expect(set(r["addresses"]) <= inside, "ADDRESS outside the policy: %r" % r["addresses"])
        expect(len(set(r["addresses"])) == len(r["addresses"]), "an ADDRESS repeated: %r" % r["addresses"])
        return "%s: MAY_COORDINATE 0, ADDRESS %r" % (foreign_name, r["addresses"])

    ck.check("ROUTE on a node outside the policy: MAY_COORDINATE 0, ADDRESS of eligible nodes", route_outside)
    ck.check("ROUTE of a missing bucket -> 300",
             lambda: expect_code(300, coord.route, bucket + "-missing"))

    # ---- REDIRECT from the node outside the policy
    data = os.urandom(5000)
    coord.put(bucket, "redirect/existing", data)

    def redirect_of(op, fn, *a, **kw):
        try:
            fn(*a, **kw)
        except ac.AgadirError as e:
            expect(e.code == 400, "%s: expected 400, got %d (%s)" % (op, e.code, e.message))
            addrs = e.addresses()
            expect(addrs, "%s: REDIRECT without ADDRESS" % op)
            expect(len(addrs) <= 16, "%s: %d ADDRESS fields" % (op, len(addrs)))
            expect(set(addrs) <= inside, "%s: ADDRESS outside the policy: %r" % (op, addrs))
            expect(e.message, "%s: no MESSAGE" % op)
            return addrs
        raise AssertionError("%s through %s answered OK" % (op, foreign_name))

    def redirects():
        c = client(foreign)
        try:
            seen = {}
            seen["GET"] = redirect_of("GET", c.get, bucket, "redirect/existing")
            seen["HEAD"] = redirect_of("HEAD", c.head, bucket, "redirect/existing")
            seen["PUT"] = redirect_of("PUT", c.put, bucket, "redirect/new", b"small")
            seen["DELETE"] = redirect_of("DELETE", c.delete, bucket, "redirect/existing")
            seen["LIST"] = redirect_of("LIST", c.list, bucket)
            expect(c.ping()["node_id"], "PING after the redirects")
        finally:
            c.close()
        # The redirect is followed: the first ADDRESS serves the request.
        d = client(seen["GET"][0])
        try:
            expect(d.get(bucket, "redirect/existing")["data"] == data, "GET through %s" % seen["GET"][0])
        finally:
            d.close()
        expect_code(303, coord.head, bucket, "redirect/new")
        return "GET, HEAD, PUT, DELETE, LIST -> 400 with ADDRESS %r; the first one serves the GET" % seen["GET"]

    ck.check("REDIRECT from a node outside the policy, for every bucket request", redirects)

    def redirect_large_put():
        c = client(foreign)
        try:
            msg = None
            try:
                c.put(bucket, "redirect/large", os.urandom(20 * MiB))
            except ac.AgadirError as e:
                expect(e.code == 400, "expected 400, got %d (%s)" % (e.code, e.message))
                msg = e.message
            expect(msg is not None, "the PUT through %s succeeded" % foreign_name)
            sent = c.last_stats["sent_data_frames"]
            expect(sent < 20, "all %d DATA frames were sent: no answer before the body" % sent)
            expect(c.ping()["node_id"], "PING after")
        finally:
            c.close()
        expect_code(303, coord.head, bucket, "redirect/large")
        return "400 after %d of 20 DATA frames; the connection carries on; nothing stored" % sent

    ck.check("REDIRECT of a 20 MiB PUT comes before the body is read", redirect_large_put)

    # ---- CONSISTENCY: every level met while every replica is up
    def every_level():
        # Reads at a level are checked on an object written at ALL, writes at a level by
        # a read at ALL: a weaker level promises no read of the last write (ONE).
        fixed = os.urandom(6000)
        f = coord.put(bucket, "level/fixed", fixed, consistency=ac.ALL)
        for name, level in LEVELS.items():
            g = coord.get(bucket, "level/fixed", consistency=level)
            expect(g["data"] == fixed and g["version"] == f["version"], "%s: GET" % name)
            expect(coord.head(bucket, "level/fixed", consistency=level)["etag"] == f["etag"], "%s: HEAD" % name)
            page = coord.list(bucket, prefix="level/", consistency=level)
            expect("level/fixed" in [o["key"] for o in page["objects"]], "%s: LIST misses level/fixed" % name)
            key = "level/%s" % name
            body = os.urandom(6000)
            p = coord.put(bucket, key, body, consistency=level)
            g = coord.get(bucket, key, consistency=ac.ALL)
            expect(g["data"] == body and g["version"] == p["version"], "%s: PUT not read back at ALL" % name)
            coord.put(bucket, key + "/doomed", b"doomed", consistency=ac.ALL)
            coord.delete(bucket, key + "/doomed", consistency=level)
            expect_code(303, coord.get, bucket, key + "/doomed", consistency=ac.ALL)
        return "GET, HEAD, LIST, PUT, DELETE at " + ", ".join(LEVELS)

    ck.check("every CONSISTENCY level served with every replica up", every_level)

    def bad_levels():
        for raw in (0, 6, 255):
            msg = expect_code(200, coord.put, bucket, "level/bad", b"x", consistency=raw)
            expect_code(200, coord.get, bucket, "redirect/existing", consistency=raw)
        expect_code(303, coord.head, bucket, "level/bad")
        return "CONSISTENCY 0, 6, 255 -> 200 on PUT and GET (%s)" % msg

    ck.check("CONSISTENCY outside 1-5 -> 200", bad_levels)

    # ---- the object the later phases need
    def write_for_later():
        body = seeded_bytes(bucket, CORRUPT_SIZE)
        coord.put(bucket, CORRUPT_KEY, body, consistency=ac.ALL)
        g = coord.get(bucket, CORRUPT_KEY)
        expect(g["data"] == body, "read back differs")
        frames = coord.last_stats["recv_data_frames"]
        expect(frames >= 2, "the object came in %d DATA frame(s)" % frames)
        for i in range(3):
            coord.put(bucket, "before/%d" % i, seeded_bytes("before-%d" % i, 3000 + 3000 * i), consistency=ac.ALL)
        # The harness damages the byte at sample_offset + 7 of the chunk holding sample_offset.
        sample_offset = CORRUPT_SIZE - 1000
        with open(args.state, "w") as f:
            json.dump({"key": CORRUPT_KEY, "size": CORRUPT_SIZE, "sample_offset": sample_offset,
                       "sample_hex": body[sample_offset:sample_offset + 32].hex()}, f)
        return "%d bytes in %d DATA frames, written at ALL; sample at %d" % (CORRUPT_SIZE, frames, sample_offset)

    ck.check("a multi-chunk object written at ALL and read back", write_for_later)


def one_down(ck, coord, bucket, rf, up):
    before = {i: seeded_bytes("before-%d" % i, 3000 + 3000 * i) for i in range(3)}
    ck.check("PUT at ALL with a replica down -> 507, ANSWERED/NEEDED",
             lambda: expect_not_enough("ALL", rf, up, coord.put, bucket, "down1/all", b"x" * 100,
                                       consistency=ac.ALL))
    ck.check("GET at ALL with a replica down -> 507",
             lambda: expect_not_enough("ALL", rf, up, coord.get, bucket, "before/0", consistency=ac.ALL))
    ck.check("HEAD at ALL with a replica down -> 507",
             lambda: expect_not_enough("ALL", rf, up, coord.head, bucket, "before/0", consistency=ac.ALL))
    ck.check("DELETE at ALL with a replica down -> 507",
             lambda: expect_not_enough("ALL", rf, up, coord.delete, bucket, "redirect/existing",
                                       consistency=ac.ALL))
    ck.check("LIST at ALL with a replica down -> 507",
             lambda: expect_not_enough("ALL", rf, up, coord.list, bucket, prefix="before/", consistency=ac.ALL))
    # one replica in each site: a majority in every site means every replica
    ck.check("PUT at EACH_QUORUM with a site's only replica down -> 507",
             lambda: expect_not_enough("EACH_QUORUM", None, up, coord.put, bucket, "down1/each", b"x" * 100,
                                       consistency=ac.EACH_QUORUM))

    def served(level_name, level):
        def run():
            key = "down1/%s" % level_name
            body = os.urandom(7000)
            coord.put(bucket, key, body, consistency=level)
            # QUORUM asks both replicas up, so it sees the write whatever the level was
            expect(coord.get(bucket, key, consistency=ac.QUORUM)["data"] == body, "read back differs")
            expect(coord.get(bucket, "before/1", consistency=level)["data"] == before[1], "before/1 differs")
            listed = [o["key"] for o in coord.list(bucket, prefix="before/", consistency=level)["objects"]]
            expect(listed == ["before/0", "before/1", "before/2"], "LIST %r" % listed)
            return "PUT, GET, LIST served with %d of %d replicas" % (up, rf)
        return run

    for name in ("QUORUM", "LOCAL_QUORUM", "ONE"):
        ck.check("%s with one replica down: served" % name, served(name, LEVELS[name]))


def two_down(ck, coord, bucket, rf, up):
    quorum = rf // 2 + 1
    ck.check("PUT at QUORUM with two replicas down -> 507, NEEDED %d" % quorum,
             lambda: expect_not_enough("QUORUM", quorum, up, coord.put, bucket, "down2/quorum", b"x" * 100,
                                       consistency=ac.QUORUM))
    ck.check("GET at QUORUM with two replicas down -> 507",
             lambda: expect_not_enough("QUORUM", quorum, up, coord.get, bucket, "before/0", consistency=ac.QUORUM))
    ck.check("PUT at ALL with two replicas down -> 507, NEEDED %d" % rf,
             lambda: expect_not_enough("ALL", rf, up, coord.put, bucket, "down2/all", b"x" * 100,
                                       consistency=ac.ALL))

    def served(level_name, level):
        def run():
            key = "down2/%s" % level_name
            body = os.urandom(7000)
            coord.put(bucket, key, body, consistency=level)
            expect(coord.get(bucket, key, consistency=level)["data"] == body, "read back differs")
            expect(coord.head(bucket, "before/0", consistency=level)["size"] == 3000, "HEAD before/0")
            return "served with %d of %d replicas" % (up, rf)
        return run

    ck.check("ONE with two replicas down: served", served("ONE", ac.ONE))
    ck.check("LOCAL_QUORUM with the coordinator's site whole: served", served("LOCAL_QUORUM", ac.LOCAL_QUORUM))


def corrupt(ck, args, coord):
    with open(args.state) as f:
        state = json.load(f)
    bucket, key, size = args.bucket, state["key"], state["size"]
    body = seeded_bytes(bucket, size)

    def aborted_mid_stream():
        rid = coord._new_id()
        frames = coord.request_frames(rid, ac.OP_GET, ac.get_request_fields(bucket, key))
        got = coord.exchange(frames, [rid], deadline_s=120)[rid]
        first, last = got[0], got[-1]
        expect(first.kind == ac.RESPONSE and first.status == 0 and not first.end_stream,
               "first frame kind %d status %d end %r" % (first.kind, first.status, first.end_stream))
        expect(ac.d_u64(first, ac.T_SIZE, "SIZE") == size, "SIZE")
        data = [f for f in got[1:-1]]
        expect(all(f.kind == ac.DATA for f in data), "kinds %r" % [f.kind for f in got])
        streamed = b"".join([first.payload] + [f.payload for f in data])
        expect(len(streamed) > 0, "no body byte before the ABORT")
        expect(body.startswith(streamed), "the bytes before the ABORT are not the object's first bytes")
        expect(len(streamed) < size, "the whole body arrived")
        expect(last.kind == ac.ABORT and last.end_stream, "last frame kind %d" % last.kind)
        expect(last.status == 502, "ABORT status %d (%s)" % (last.status, last.message()))
        expect(re.search(r"[0-9a-f]{64}", last.message()), "the MESSAGE names no chunk id: %r" % last.message())
        try:
            coord.answer(ac.OP_GET, got)
            raise AssertionError("the client kept the partial body")
        except ac.AgadirError as e:
            expect(e.code == 502, "client raised %d" % e.code)
        return "RESPONSE, %d DATA frames (%d of %d bytes, all correct), then ABORT 502: %s" % (
            len(data), len(streamed), size, last.message())

    ck.check("GET of an object whose later chunk is corrupt on every replica: ABORT 502 mid-stream",
             aborted_mid_stream)
    ck.check("the client's GET raises 502 (partial body discarded)",
             lambda: expect_code(502, coord.get, bucket, key))

    def rest_served():
        g = coord.get(bucket, key, range=(0, 1000))
        expect(g["data"] == body[:1000], "first 1000 bytes differ")
        expect(coord.ping()["node_id"], "PING after the ABORT")
        expect(coord.get(bucket, "before/0")["data"] == seeded_bytes("before-0", 3000), "before/0 differs")
        return "ranged GET of the first chunk and other objects served on the same connection"

    ck.check("the connection and the object's sound chunks still serve", rest_served)


if __name__ == "__main__":
    sys.exit(main())
