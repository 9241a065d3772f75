#!/usr/bin/env python3
"""Independent reader for the imgsearch weight file (.isw), version 1.

Written from docs/FORMAT.md alone (not from the engine's C reader or writer),
so that the test suite can check that the specification is sufficient and
that the engine agrees with it.

Usage (as ctest runs it):
    python3 tests/format/check_format.py IMGSEARCH MAKE_FIXTURE

IMGSEARCH is the built `imgsearch` CLI, MAKE_FIXTURE a program that writes a
sample weight file: `MAKE_FIXTURE OUT.isw [alignment]`.

Standard library only.
"""

import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import zlib

# --------------------------------------------------------------------------
# Constants from FORMAT.md
# --------------------------------------------------------------------------

MAGIC = b"\x89ISW\r\n\x1a\n"
VERSION = 1
BYTE_ORDER = 0x01020304
HEADER_SIZE = 128
U64_MAX = (1 << 64) - 1

# "magic(8) version byte_order header_size alignment (u32 x4)
#  file_size .. data_size (u64 x9) index_crc32 flags (u32 x2) reserved(20)
#  header_crc32 (u32)"
HEADER_STRUCT = struct.Struct("<8s4I9Q2I20sI")
assert HEADER_STRUCT.size == HEADER_SIZE

META_TYPES = {1: "i64", 2: "f64", 3: "string", 4: "i64[]", 5: "f64[]", 6: "string[]"}
DTYPES = {0: ("f32", 4), 1: ("f16", 2), 2: ("i32", 4), 3: ("u8", 1)}
DTYPE_STRUCT = {"f32": "f", "f16": "e", "i32": "i", "u8": "B"}

KEY_MAX = 256
NAME_MAX = 1024
NDIM_MAX = 4
DIM_MAX = 1 << 40
MIN_META_ENTRY = 13
MIN_TENSOR_ENTRY = 33

HEADER_FIELDS = (
    "version", "alignment", "file_size", "metadata_count", "metadata_offset",
    "metadata_size", "tensor_count", "directory_offset", "directory_size",
    "data_offset", "data_size", "index_crc32",
)


def _fail(field, msg):
    raise ValueError("%s: %s" % (field, msg))


class _Cursor:
    """Reads little-endian values from buf[start:end]; never passes end."""

    def __init__(self, buf, start, end, section):
        self.buf = buf
        self.pos = start
        self.end = end
        self.section = section

    def take(self, n, field):
        if n < 0 or n > self.end - self.pos:
            _fail(field, "needs %d bytes at offset %d but the %s section ends at %d"
                  % (n, self.pos, self.section, self.end))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u32(self, field):
        return struct.unpack("<I", self.take(4, field))[0]

    def u64(self, field):
        return struct.unpack("<Q", self.take(8, field))[0]

    def string(self, field, min_len=0, max_len=None):
        n = self.u32(field + " length")
        if n < min_len or (max_len is not None and n > max_len):
            _fail(field, "length %d not in %d..%s" % (n, min_len, max_len if max_len is not None else "any"))
        raw = self.take(n, field)
        return raw, _utf8(raw, field)


def _utf8(raw, field):
    # Python's strict UTF-8 decoder rejects overlong forms, surrogates and
    # code points above U+10FFFF, which is exactly FORMAT.md's rule; the NUL
    # rule is checked separately.
    try:
        s = raw.decode("utf-8", "strict")
    except UnicodeDecodeError as e:
        _fail(field, "invalid UTF-8 (%s)" % e.reason)
    if b"\x00" in raw:
        _fail(field, "contains a NUL byte")
    return s


def _is_pow2(x):
    return x > 0 and (x & (x - 1)) == 0


def _add(a, b, field):
    s = a + b
    if s > U64_MAX:
        _fail(field, "offset + size overflows u64 (%d + %d)" % (a, b))
    return s


def read_isw(path, verify_data=True):
    """Parse and validate an .isw file per FORMAT.md; return a dict.

    Raises ValueError naming the field at fault on any violation.
    """
    with open(path, "rb") as f:
        buf = f.read()
    real_size = len(buf)

    # ---- 1. header ------------------------------------------------------
    if real_size < HEADER_SIZE:
        _fail("file_size", "file is %d bytes, smaller than the 128-byte header" % real_size)
    (magic, version, byte_order, header_size, alignment,
     file_size, metadata_count, metadata_offset, metadata_size,
     tensor_count, directory_offset, directory_size, data_offset, data_size,
     index_crc32, flags, reserved, header_crc32) = HEADER_STRUCT.unpack_from(buf, 0)
    if magic != MAGIC:
        _fail("magic", "%s is not %s" % (magic.hex(" "), MAGIC.hex(" ")))
    if byte_order != BYTE_ORDER:
        _fail("byte_order", "0x%08x is not 0x%08x (not a little-endian file)" % (byte_order, BYTE_ORDER))
    if version != VERSION:
        _fail("version", "%d is not a known version (1)" % version)
    if header_size != HEADER_SIZE:
        _fail("header_size", "%d is not 128" % header_size)
    crc = zlib.crc32(buf[0:124]) & 0xFFFFFFFF
    if crc != header_crc32:
        _fail("header_crc32", "stored 0x%08x, computed 0x%08x" % (header_crc32, crc))
    if flags != 0:
        _fail("flags", "0x%08x is not 0" % flags)
    if reserved != b"\x00" * 20:
        _fail("reserved", "reserved header bytes are not zero")

    # ---- 2. alignment, sizes, layout -----------------------------------
    if not _is_pow2(alignment) or not (64 <= alignment <= 65536):
        _fail("alignment", "%d is not a power of two in 64..65536" % alignment)
    if file_size != real_size:
        _fail("file_size", "header says %d, the file has %d bytes" % (file_size, real_size))
    if metadata_offset != HEADER_SIZE:
        _fail("metadata_offset", "%d is not 128" % metadata_offset)
    meta_end = _add(metadata_offset, metadata_size, "metadata_size")
    if meta_end > file_size:
        _fail("metadata_size", "metadata section [%d, %d) passes the end of the file (%d)"
              % (metadata_offset, meta_end, file_size))
    if directory_offset != meta_end:
        _fail("directory_offset", "%d is not metadata_offset + metadata_size = %d"
              % (directory_offset, meta_end))
    dir_end = _add(directory_offset, directory_size, "directory_size")
    if dir_end > file_size:
        _fail("directory_size", "directory [%d, %d) passes the end of the file (%d)"
              % (directory_offset, dir_end, file_size))
    expect_data = _add(dir_end, alignment - 1, "data_offset") // alignment * alignment
    if data_offset != expect_data:
        _fail("data_offset", "%d is not directory end %d rounded up to %d = %d"
              % (data_offset, dir_end, alignment, expect_data))
    if data_offset > file_size:
        _fail("data_offset", "%d passes the end of the file (%d)" % (data_offset, file_size))
    if data_size != file_size - data_offset:
        _fail("data_size", "%d is not file_size - data_offset = %d"
              % (data_size, file_size - data_offset))
    pad = buf[dir_end:data_offset]
    if pad.count(0) != len(pad):
        _fail("padding", "bytes [%d, %d) before the data section are not zero" % (dir_end, data_offset))

    # ---- 3. count bounds, index crc ------------------------------------
    if metadata_count > metadata_size // MIN_META_ENTRY:
        _fail("metadata_count", "%d entries cannot fit in %d bytes (at least %d each)"
              % (metadata_count, metadata_size, MIN_META_ENTRY))
    if tensor_count > directory_size // MIN_TENSOR_ENTRY:
        _fail("tensor_count", "%d entries cannot fit in %d bytes (at least %d each)"
              % (tensor_count, directory_size, MIN_TENSOR_ENTRY))
    crc = zlib.crc32(buf[metadata_offset:dir_end]) & 0xFFFFFFFF
    if crc != index_crc32:
        _fail("index_crc32", "stored 0x%08x, computed 0x%08x" % (index_crc32, crc))

    # ---- 4a. metadata entries ------------------------------------------
    metadata = []
    keys_raw = []
    cur = _Cursor(buf, metadata_offset, meta_end, "metadata")
    for i in range(metadata_count):
        where = "metadata[%d]" % i
        kraw, key = cur.string(where + ".key", 1, KEY_MAX)
        where = "metadata[%d] (%r)" % (i, key)
        code = cur.u32(where + ".type")
        if code not in META_TYPES:
            _fail(where + ".type", "unknown type code %d" % code)
        tname = META_TYPES[code]
        if tname == "i64":
            value = struct.unpack("<q", cur.take(8, where + ".value"))[0]
        elif tname == "f64":
            value = struct.unpack("<d", cur.take(8, where + ".value"))[0]
        elif tname == "string":
            value = cur.string(where + ".value")[1]
        else:
            count = cur.u64(where + ".count")
            if tname == "string[]":
                value = []
                for j in range(count):
                    # Each element needs at least 4 bytes: fail early rather
                    # than loop 2^64 times on a corrupt count.
                    if cur.end - cur.pos < 4:
                        _fail(where + ".count", "%d elements do not fit in the section" % count)
                    value.append(cur.string("%s.value[%d]" % (where, j))[1])
            else:
                if count > (cur.end - cur.pos) // 8:
                    _fail(where + ".count", "%d elements of 8 bytes do not fit in the section" % count)
                raw = cur.take(count * 8, where + ".value")
                fmt = "<%d%s" % (count, "q" if tname == "i64[]" else "d")
                value = list(struct.unpack(fmt, raw))
        metadata.append({"key": key, "type": tname, "value": value})
        keys_raw.append(kraw)
    if cur.pos != meta_end:
        _fail("metadata_size", "%d bytes left over after %d entries" % (meta_end - cur.pos, metadata_count))

    # ---- 4b. tensor directory ------------------------------------------
    tensors = []
    names_raw = []
    cur = _Cursor(buf, directory_offset, dir_end, "directory")
    for i in range(tensor_count):
        where = "tensor[%d]" % i
        nraw, name = cur.string(where + ".name", 1, NAME_MAX)
        where = "tensor[%d] (%r)" % (i, name)
        code = cur.u32(where + ".dtype")
        if code not in DTYPES:
            _fail(where + ".dtype", "unknown dtype code %d" % code)
        dtype, esize = DTYPES[code]
        ndim = cur.u32(where + ".ndim")
        if ndim > NDIM_MAX:
            _fail(where + ".ndim", "%d is not in 0..4" % ndim)
        shape = []
        count = 1
        for d in range(ndim):
            dim = cur.u64("%s.shape[%d]" % (where, d))
            if not (1 <= dim <= DIM_MAX):
                _fail("%s.shape[%d]" % (where, d), "%d is not in 1..2^40" % dim)
            shape.append(dim)
            count *= dim
            if count > U64_MAX:
                _fail(where + ".shape", "element count overflows u64")
        if count * esize > U64_MAX:
            _fail(where + ".shape", "byte size overflows u64")
        offset = cur.u64(where + ".offset")
        nbytes = cur.u64(where + ".nbytes")
        tcrc = cur.u32(where + ".crc32")
        if nbytes != count * esize:
            _fail(where + ".nbytes", "%d is not product(shape) x %d = %d" % (nbytes, esize, count * esize))
        if offset % alignment != 0:
            _fail(where + ".offset", "%d is not a multiple of the alignment %d" % (offset, alignment))
        end = _add(offset, nbytes, where + ".offset")
        if end > data_size:
            _fail(where + ".offset", "data [%d, %d) passes the end of the data section (%d bytes)"
                  % (offset, end, data_size))
        tensors.append({"name": name, "dtype": dtype, "shape": shape,
                        "offset": offset, "nbytes": nbytes, "crc32": tcrc})
        names_raw.append(nraw)
    if cur.pos != dir_end:
        _fail("directory_size", "%d bytes left over after %d entries" % (dir_end - cur.pos, tensor_count))

    # ---- 5. uniqueness, overlap ----------------------------------------
    if len(set(keys_raw)) != len(keys_raw):
        seen = set()
        for k, m in zip(keys_raw, metadata):
            if k in seen:
                _fail("metadata key", "duplicate key %r" % m["key"])
            seen.add(k)
    if len(set(names_raw)) != len(names_raw):
        seen = set()
        for n, t in zip(names_raw, tensors):
            if n in seen:
                _fail("tensor name", "duplicate name %r" % t["name"])
            seen.add(n)
    by_offset = sorted(tensors, key=lambda t: t["offset"])
    for a, b in zip(by_offset, by_offset[1:]):
        if a["offset"] + a["nbytes"] > b["offset"]:
            _fail("tensor offset", "%r [%d, %d) overlaps %r at %d"
                  % (a["name"], a["offset"], a["offset"] + a["nbytes"], b["name"], b["offset"]))

    # ---- 6. data crcs ---------------------------------------------------
    if verify_data:
        for t in tensors:
            start = data_offset + t["offset"]
            crc = zlib.crc32(buf[start:start + t["nbytes"]]) & 0xFFFFFFFF
            if crc != t["crc32"]:
                _fail("tensor %r crc32" % t["name"], "stored 0x%08x, computed 0x%08x" % (t["crc32"], crc))

    out = {
        "version": version, "byte_order": byte_order, "header_size": header_size,
        "alignment": alignment, "file_size": file_size,
        "metadata_count": metadata_count, "metadata_offset": metadata_offset,
        "metadata_size": metadata_size, "tensor_count": tensor_count,
        "directory_offset": directory_offset, "directory_size": directory_size,
        "data_offset": data_offset, "data_size": data_size,
        "index_crc32": index_crc32, "flags": flags, "header_crc32": header_crc32,
        "metadata": metadata, "tensors": tensors,
    }
    return out


def tensor_values(path, info, name):
    """Decode the named tensor's elements (flat, row-major) per its dtype."""
    for t in info["tensors"]:
        if t["name"] == name:
            break
    else:
        raise KeyError(name)
    with open(path, "rb") as f:
        f.seek(info["data_offset"] + t["offset"])
        raw = f.read(t["nbytes"])
    esize = {"f32": 4, "f16": 2, "i32": 4, "u8": 1}[t["dtype"]]
    n = len(raw) // esize
    return list(struct.unpack("<%d%s" % (n, DTYPE_STRUCT[t["dtype"]]), raw))


# --------------------------------------------------------------------------
# Checks against the engine
# --------------------------------------------------------------------------

class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name):
        self.passed += 1
        print("PASS  %s" % name)

    def bad(self, name, why):
        self.failed += 1
        print("FAIL  %s: %s" % (name, why))

    def check(self, name, cond, why=""):
        if cond:
            self.ok(name)
        else:
            self.bad(name, why)
        return cond


def _json_f64(v):
    """A JSON f64 as the engine writes it: a number, or "NaN"/"Infinity"/"-Infinity"."""
    if isinstance(v, str):
        consts = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
        if v not in consts:
            raise ValueError("f64 string %r is not NaN/Infinity/-Infinity" % v)
        return consts[v]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("f64 value %r is not a number" % (v,))
    return float(v)


def _f64_same(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return struct.pack("<d", a) == struct.pack("<d", b)  # exact, sign of zero included


def _i64_ok(v):
    return isinstance(v, int) and not isinstance(v, bool) and -(1 << 63) <= v < (1 << 63)


def compare_metadata_entry(i, mine, theirs):
    """Return None if equal, else a message."""
    if not isinstance(theirs, dict):
        return "metadata[%d] in JSON is not an object" % i
    for f in ("key", "type"):
        if theirs.get(f) != mine[f]:
            return "metadata[%d].%s: reader %r, engine %r" % (i, f, mine[f], theirs.get(f))
    if "value" not in theirs:
        return "metadata[%d] (%r): no value in JSON" % (i, mine["key"])
    t, mv, tv = mine["type"], mine["value"], theirs["value"]
    where = "metadata[%d] (%r).value" % (i, mine["key"])
    try:
        if t == "i64":
            if not _i64_ok(tv) or tv != mv:
                return "%s: reader %r, engine %r" % (where, mv, tv)
        elif t == "f64":
            if not _f64_same(mv, _json_f64(tv)):
                return "%s: reader %r, engine %r" % (where, mv, tv)
        elif t == "string":
            if tv != mv:
                return "%s: reader %r, engine %r" % (where, mv, tv)
        else:
            if not isinstance(tv, list) or len(tv) != len(mv):
                return "%s: reader has %d elements, engine %r" % (where, len(mv), tv)
            for j, (a, b) in enumerate(zip(mv, tv)):
                if t == "i64[]":
                    same = _i64_ok(b) and a == b
                elif t == "f64[]":
                    same = _f64_same(a, _json_f64(b))
                else:
                    same = a == b
                if not same:
                    return "%s[%d]: reader %r, engine %r" % (where, j, a, b)
    except ValueError as e:
        return "%s: %s" % (where, e)
    return None


def compare_tensor_entry(i, mine, theirs):
    if not isinstance(theirs, dict):
        return "tensors[%d] in JSON is not an object" % i
    for f in ("name", "dtype", "shape", "offset", "nbytes", "crc32"):
        if f not in theirs:
            return "tensors[%d] (%r): no %s in JSON" % (i, mine["name"], f)
        a, b = mine[f], theirs[f]
        if f == "shape":
            same = isinstance(b, list) and len(a) == len(b) and all(
                _i64_ok(y) and x == y for x, y in zip(a, b))
        elif f in ("name", "dtype"):
            same = a == b
        else:
            same = isinstance(b, int) and not isinstance(b, bool) and a == b
        if not same:
            return "tensors[%d] (%r).%s: reader %r, engine %r" % (i, mine["name"], f, a, b)
    return None


def _reject_constant(c):
    raise ValueError("non-standard JSON constant %s" % c)


def _parse_int(s):
    # A JSON "-0" can only be an f64 negative zero; keep its sign.
    return -0.0 if s == "-0" else int(s)


def engine_json(imgsearch, path):
    p = subprocess.run([imgsearch, "info", "--json", "--verify", path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("imgsearch info --json --verify exited %d: %s"
                           % (p.returncode, p.stderr.decode("utf-8", "replace").strip()))
    return json.loads(p.stdout.decode("utf-8"), parse_constant=_reject_constant,
                      parse_int=_parse_int)


def check_against_engine(ck, imgsearch, path, label):
    try:
        mine = read_isw(path)
    except ValueError as e:
        ck.bad("%s: read_isw" % label, str(e))
        return None
    ck.ok("%s: read_isw parses and validates (%d metadata, %d tensors, data CRCs ok)"
          % (label, len(mine["metadata"]), len(mine["tensors"])))
    try:
        theirs = engine_json(imgsearch, path)
    except (RuntimeError, ValueError, UnicodeDecodeError) as e:
        ck.bad("%s: imgsearch info --json --verify" % label, str(e))
        return mine
    if not isinstance(theirs, dict):
        ck.bad("%s: imgsearch info --json" % label, "output is not a JSON object")
        return mine

    diffs = []
    for f in HEADER_FIELDS:
        if f not in theirs:
            diffs.append("%s missing from JSON" % f)
        elif not (isinstance(theirs[f], int) and not isinstance(theirs[f], bool)) or theirs[f] != mine[f]:
            diffs.append("%s: reader %r, engine %r" % (f, mine[f], theirs[f]))
    ck.check("%s: header fields agree with engine" % label, not diffs, "; ".join(diffs))

    if theirs.get("data_verified") is not True:
        ck.bad("%s: engine data_verified" % label, "JSON data_verified is %r, expected true"
               % theirs.get("data_verified"))

    tm = theirs.get("metadata")
    diffs = []
    if not isinstance(tm, list):
        diffs.append("JSON has no metadata list")
    else:
        if len(tm) != len(mine["metadata"]):
            diffs.append("reader has %d metadata entries, engine %d" % (len(mine["metadata"]), len(tm)))
        for i, (a, b) in enumerate(zip(mine["metadata"], tm)):
            d = compare_metadata_entry(i, a, b)
            if d:
                diffs.append(d)
    ck.check("%s: %d metadata entries agree with engine (key, type, value)"
             % (label, len(mine["metadata"])), not diffs, "; ".join(diffs))

    tt = theirs.get("tensors")
    diffs = []
    if not isinstance(tt, list):
        diffs.append("JSON has no tensors list")
    else:
        if len(tt) != len(mine["tensors"]):
            diffs.append("reader has %d tensors, engine %d" % (len(mine["tensors"]), len(tt)))
        for i, (a, b) in enumerate(zip(mine["tensors"], tt)):
            d = compare_tensor_entry(i, a, b)
            if d:
                diffs.append(d)
    ck.check("%s: %d tensors agree with engine (name, dtype, shape, offset, nbytes, crc32)"
             % (label, len(mine["tensors"])), not diffs, "; ".join(diffs))

    # Layout invariants that the JSON comparison alone would not show.
    a = mine["alignment"]
    bad = [t["name"] for t in mine["tensors"] if (mine["data_offset"] + t["offset"]) % a]
    ck.check("%s: every tensor starts at a file offset that is a multiple of %d" % (label, a),
             not bad and mine["data_offset"] % a == 0, "misaligned: %r" % bad)
    return mine


def check_values(ck, path, info, label):
    tensors = {t["name"]: t for t in info["tensors"]}
    meta = {m["key"]: m for m in info["metadata"]}

    t = tensors.get("conv.bias")
    if t is None:
        ck.bad("%s: conv.bias" % label, "no tensor conv.bias")
    elif t["dtype"] != "f16":
        ck.bad("%s: conv.bias" % label, "dtype %s, expected f16" % t["dtype"])
    else:
        v = tensor_values(path, info, "conv.bias")
        ck.check("%s: conv.bias is f16 with 10 finite values in [-4, 4]" % label,
                 len(v) == 10 and all(math.isfinite(x) and -4 <= x <= 4 for x in v),
                 "values %r" % v)

    t = tensors.get("image")
    if t is None:
        ck.bad("%s: image" % label, "no tensor image")
    else:
        v = tensor_values(path, info, "image")
        ck.check("%s: image is u8 with shape [1, 4, 4, 3]" % label,
                 t["dtype"] == "u8" and t["shape"] == [1, 4, 4, 3] and len(v) == 48
                 and all(0 <= x <= 255 for x in v),
                 "dtype %s, shape %r, %d values" % (t["dtype"], t["shape"], len(v)))

    t = tensors.get("eps")
    if t is None:
        ck.bad("%s: eps" % label, "no tensor eps")
    else:
        v = tensor_values(path, info, "eps") if t["dtype"] == "f32" else None
        want = struct.unpack("<f", struct.pack("<f", 0.001))[0]
        ck.check("%s: eps is an f32 scalar (shape []) equal to 0.001f" % label,
                 t["dtype"] == "f32" and t["shape"] == [] and t["nbytes"] == 4
                 and v is not None and len(v) == 1 and v[0] == want,
                 "dtype %s, shape %r, nbytes %d, values %r" % (t["dtype"], t["shape"], t["nbytes"], v))

    for name in ("conv.weight", "token_ids"):
        t = tensors.get(name)
        if t is not None:
            v = tensor_values(path, info, name)
            n = 1
            for d in t["shape"]:
                n *= d
            fin = t["dtype"] != "f32" or all(math.isfinite(x) for x in v)
            ck.check("%s: %s decodes to %d %s elements" % (label, name, n, t["dtype"]),
                     len(v) == n and fin, "%d values, finite %s" % (len(v), fin))

    m = meta.get("labels")
    if m is None:
        ck.bad("%s: labels" % label, "no metadata key labels")
    else:
        v = m["value"]
        ck.check("%s: labels is string[10] with [3] = 'café ☕' and [5] = 'tab\\there'" % label,
                 m["type"] == "string[]" and len(v) == 10 and v[3] == "café ☕" and v[5] == "tab\there",
                 "type %s, value %r" % (m["type"], v))


# --------------------------------------------------------------------------
# Negative checks
# --------------------------------------------------------------------------

def _corruptions(good, info):
    """(label, bytes) pairs: corrupt copies of a valid file."""
    out = []

    b = bytearray(good)
    b[1] ^= 0xFF
    out.append(("magic byte flipped", bytes(b)))

    b = bytearray(good)
    struct.pack_into("<I", b, 8, 2)
    struct.pack_into("<I", b, 124, zlib.crc32(bytes(b[0:124])) & 0xFFFFFFFF)
    out.append(("version 2 with header_crc32 recomputed", bytes(b)))

    out.append(("truncated by one byte", bytes(good[:-1])))

    b = bytearray(good)
    pos = info["metadata_offset"] + info["metadata_size"] // 2
    b[pos] ^= 0x01
    out.append(("metadata byte %d flipped, index_crc32 stale" % pos, bytes(b)))

    # The last byte of the data section; make sure it belongs to a tensor
    # (bytes that belong to none are ignored by readers).
    last = info["file_size"] - 1
    owner = [t for t in info["tensors"]
             if info["data_offset"] + t["offset"] <= last < info["data_offset"] + t["offset"] + t["nbytes"]]
    if not owner:
        t = max(info["tensors"], key=lambda t: t["offset"] + t["nbytes"])
        last = info["data_offset"] + t["offset"] + t["nbytes"] - 1
    b = bytearray(good)
    b[last] ^= 0xFF
    out.append(("last data byte (%d) flipped" % last, bytes(b)))
    return out


def check_negatives(ck, imgsearch, path, tmp):
    with open(path, "rb") as f:
        good = f.read()
    info = read_isw(path)
    for i, (label, data) in enumerate(_corruptions(good, info)):
        bad_path = os.path.join(tmp, "bad%d.isw" % i)
        with open(bad_path, "wb") as f:
            f.write(data)
        try:
            read_isw(bad_path)
        except ValueError as e:
            ck.ok("negative, %s: read_isw rejects it (%s)" % (label, e))
        else:
            ck.bad("negative, %s: read_isw" % label, "accepted a corrupt file")

        p = subprocess.run([imgsearch, "info", "--verify", bad_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        err = p.stderr.decode("utf-8", "replace")
        one_line = err.endswith("\n") and err.count("\n") == 1
        ck.check("negative, %s: imgsearch info --verify exits 1, one stderr line (%s)"
                 % (label, err.strip()),
                 p.returncode == 1 and one_line and p.stdout == b"",
                 "exit %d, stdout %d bytes, stderr %r" % (p.returncode, len(p.stdout), err))


# --------------------------------------------------------------------------

def _self_test(ck):
    ck.check("zlib.crc32(b'123456789') == 0xCBF43926 (FORMAT.md's CRC)",
             zlib.crc32(b"123456789") & 0xFFFFFFFF == 0xCBF43926)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: check_format.py IMGSEARCH MAKE_FIXTURE\n")
        return 2
    imgsearch, make_fixture = argv[1], argv[2]
    ck = Checker()
    _self_test(ck)
    with tempfile.TemporaryDirectory(prefix="isw-check-") as tmp:
        default_path = None
        for align in (None, 64, 256, 4096):
            label = "alignment %s" % (align if align is not None else "default")
            path = os.path.join(tmp, "fixture-%s.isw" % (align if align is not None else "default"))
            cmd = [make_fixture, path] + ([str(align)] if align is not None else [])
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if p.returncode != 0 or not os.path.exists(path):
                ck.bad("%s: make_fixture" % label, "exit %d: %s"
                       % (p.returncode, p.stderr.decode("utf-8", "replace").strip()))
                continue
            info = check_against_engine(ck, imgsearch, path, label)
            if info is None:
                continue
            if align is not None:
                ck.check("%s: header alignment is %d" % (label, align),
                         info["alignment"] == align, "header says %d" % info["alignment"])
            else:
                ck.check("%s: default alignment is 256" % label,
                         info["alignment"] == 256, "header says %d" % info["alignment"])
                default_path = path
            check_values(ck, path, info, label)
        if default_path is not None:
            check_negatives(ck, imgsearch, default_path, tmp)
        else:
            ck.bad("negative checks", "no valid default fixture to corrupt")
    print("%d passed, %d failed" % (ck.passed, ck.failed))
    return 0 if ck.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
