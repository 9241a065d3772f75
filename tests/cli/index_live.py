#!/usr/bin/env python3
"""index_live.py: an index's live rows as docs/FORMAT.md describes them, read
without imgsearch (json, numpy): the tests' independent reader.

  python3 index_live.py INDEX                 prints "path<TAB>sha1 of the visual row" per live row
  python3 index_live.py --same INDEX1 INDEX2  exit 0 if both hold the same live rows (paths, in
                                              order, and visual and semantic rows bit for bit) and
                                              the same live failures
  python3 index_live.py --same-set I1 I2      the same, in any order
  python3 index_live.py --check INDEX         exit 0 if the index is whole: the manifest's files
                                              exist with their recorded sizes and CRC-32s, the
                                              counts add up, every tombstone names an earlier record
"""
import hashlib
import json
import os
import sys
import urllib.parse
import zlib


def load(idx):
    m = json.load(open(os.path.join(idx, "manifest.json")))
    assert m["format"] == "imgsearch-index" and m["version"] == 2, (m["format"], m["version"])
    rows, failures, dead_rows, dead_failures = [], [], set(), set()
    tables = {"visual": [], "semantic": []}
    for c in m["chunks"]:
        base = os.path.join(idx, "chunk-%06d." % c["id"])
        for name, rec in c["files"].items():
            data = open(base + name, "rb").read()
            assert len(data) == rec["bytes"], (base + name, len(data), rec["bytes"])
            assert "%08x" % zlib.crc32(data) == rec["crc32"], base + name
        if c["tombstones"]:
            for line in open(base + "tombstones.txt", "rb"):
                kind, i = line.rstrip(b"\n").split(b"\t")
                i = int(i)
                if kind == b"row":
                    assert i < len(rows) and i not in dead_rows, ("tombstone", i)
                    dead_rows.add(i)
                else:
                    assert kind == b"failure" and i < len(failures) and i not in dead_failures, ("tombstone", i)
                    dead_failures.add(i)
        n = 0
        for line in open(base + "rows.txt", "rb"):
            size, mtime, crc, p = line.rstrip(b"\n").split(b"\t")
            rows.append(urllib.parse.unquote_to_bytes(p))
            n += 1
        assert n == c["rows"], (base, n, c["rows"])
        n = 0
        for line in open(base + "failures.txt", "rb"):
            size, mtime, p, reason = line.rstrip(b"\n").split(b"\t")
            failures.append(urllib.parse.unquote_to_bytes(p))
            n += 1
        assert n == c["failures"], (base, n, c["failures"])
        for kind in tables:
            if kind == "semantic" and m["semantic_dim"] == 0:
                continue
            import numpy as np
            t = np.load(base + kind + ".npy")
            assert t.shape == (c["rows"], m[kind + "_dim"]), (base, t.shape)
            tables[kind].extend(bytes(r) for r in t)
    assert len(rows) == m["rows"] and len(failures) == m["failures"]
    assert len(dead_rows) == m["tombstones"]["rows"] and len(dead_failures) == m["tombstones"]["failures"]
    live = [i for i in range(len(rows)) if i not in dead_rows]
    out = []
    for i in live:
        sem = tables["semantic"][i] if tables["semantic"] else b""
        out.append((rows[i], tables["visual"][i], sem))
    live_failures = [failures[i] for i in range(len(failures)) if i not in dead_failures]
    assert len({p for p, _, _ in out}) == len(out), "a path with two live rows"
    return m, out, live_failures


def main():
    args = sys.argv[1:]
    if args[0] in ("--same", "--same-set"):
        _, a, fa = load(args[1])
        _, b, fb = load(args[2])
        if args[0] == "--same-set":
            a, b = sorted(a), sorted(b)
        if [r[0] for r in a] != [r[0] for r in b]:
            print("paths differ:\n  %s\n  %s" % ([r[0] for r in a], [r[0] for r in b]), file=sys.stderr)
            return 1
        for (p, v1, s1), (_, v2, s2) in zip(a, b):
            if v1 != v2 or s1 != s2:
                print("rows of %s differ" % p, file=sys.stderr)
                return 1
        if sorted(fa) != sorted(fb):
            print("failures differ: %s %s" % (fa, fb), file=sys.stderr)
            return 1
        return 0
    if args[0] == "--check":
        load(args[1])
        return 0
    _, rows, _ = load(args[0])
    for p, v, _ in rows:
        sys.stdout.buffer.write(p + b"\t" + hashlib.sha1(v).hexdigest().encode() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
