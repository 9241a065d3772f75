#!/usr/bin/env python3
"""gen_unicode_tables.py: writes engine/models/unicode_tables.c, the Unicode data the
WordPiece tokenizer (engine/models/tokenizer.c) needs, from the Unicode Character
Database as Debian's unicode-data package installs it (/usr/share/unicode).

Usage: scripts/gen_unicode_tables.py [UCD_DIR] > engine/models/unicode_tables.c
CI does not run this; the output is committed.

Hugging Face's tokenizers (the reference) takes its Unicode data from three
places of different ages, and the tables reproduce each one:
- unicode_categories 0.1.1 (control = Cc|Cf|Co, punctuation = P*, Mn for accent
  stripping): Unicode 8.0. We keep the UCD's category only for code points
  assigned in 8.0 or earlier (DerivedAge.txt) and apply CATEGORY_8_0_FIXES, the
  few characters whose category changed since 8.0.
- unicode-normalization-alignments (NFD: canonical decompositions and combining
  classes): Unicode 9.0. Decompositions and classes of characters assigned
  after 9.0 are left out.
- Rust's std (char::is_whitespace, char::to_lowercase): the newest Unicode. The
  White_Space property has not changed since 6.x; lowercase mappings added after
  the UCD we read come from scripts/unicode_lowercase_extra.txt.
tests/cli/tokenizer_diff.py --codepoints checks every code point against tokenizers.

Layout of the output: one record per distinct property combination
(flags, canonical combining class, full NFD, full lowercase); a two-level
index (code point >> 7 -> block, block + (code point & 127) -> record) with
identical blocks shared; NFD and lowercase sequences in one uint32 pool.
"""
import os
import sys

BLOCK_SHIFT = 7
BLOCK = 1 << BLOCK_SHIFT
MAX_CP = 0x110000

FLAG_CONTROL, FLAG_WHITESPACE, FLAG_PUNCT, FLAG_MN, FLAG_CJK = 1, 2, 4, 8, 16

CATEGORY_VERSION = (8, 0)
NORMALIZATION_VERSION = (9, 0)
# Code point -> its General_Category in Unicode 8.0, where it differs from today's.
CATEGORY_8_0_FIXES = {
    0x1734: "Mn",   # HANUNOO SIGN PAMUDPOD: Mc since 14.0
    0x1885: "Lo",   # MONGOLIAN LETTER ALI GALI BALUDA: Mn since 9.0
    0x1886: "Lo",   # MONGOLIAN LETTER ALI GALI THREE BALUDA: Mn since 9.0
    0xA9BD: "Mc",   # JAVANESE CONSONANT SIGN KERET: Mn since 12.0
    0x111C9: "Po",  # SHARADA SANDHI MARK: Mn since 11.0
    0x166D: "Po",   # CANADIAN SYLLABICS CHI SIGN: So since 12.0
}
CJK_RANGES = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
ASCII_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def data_lines(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                yield [x.strip() for x in line.split(";")]


def code_range(text):
    a, _, b = text.partition("..")
    return range(int(a, 16), int(b or a, 16) + 1)


def load(ucd):
    cat, ccc, dec, lower = {}, {}, {}, {}
    first = None
    for f in data_lines(os.path.join(ucd, "UnicodeData.txt")):
        cp = int(f[0], 16)
        if f[1].endswith(", First>"):
            first = cp
            continue
        cps = range(first, cp + 1) if f[1].endswith(", Last>") else [cp]
        for c in cps:
            cat[c] = f[2]
        if f[3] != "0":
            ccc[cp] = int(f[3])
        if f[5] and not f[5].startswith("<"):
            dec[cp] = [int(x, 16) for x in f[5].split()]
        if f[13]:
            lower[cp] = [int(f[13], 16)]
    age = {}
    for f in data_lines(os.path.join(ucd, "DerivedAge.txt")):
        v = tuple(int(x) for x in f[1].split("."))
        for c in code_range(f[0]):
            age[c] = v
    white = set()
    for f in data_lines(os.path.join(ucd, "PropList.txt")):
        if f[1] == "White_Space":
            white.update(code_range(f[0]))
    for f in data_lines(os.path.join(ucd, "SpecialCasing.txt")):
        if len(f) > 4 and f[4]:
            continue  # conditional (Final_Sigma, locales): char::to_lowercase ignores these
        lower[int(f[0], 16)] = [int(x, 16) for x in f[1].split()]
    extra = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unicode_lowercase_extra.txt")
    for f in data_lines(extra):
        lower[int(f[0], 16)] = [int(x, 16) for x in f[1].split()]
    return cat, ccc, dec, lower, age, white


def hangul_nfd(c):
    s = c - 0xAC00
    out = [0x1100 + s // 588, 0x1161 + (s % 588) // 28]
    if s % 28:
        out.append(0x11A7 + s % 28)
    return out


def main():
    ucd = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/unicode"
    cat, ccc, dec, lower, age, white = load(ucd)
    old = lambda c, v: age.get(c, (99, 0)) <= v

    def cat8(c):
        if c in CATEGORY_8_0_FIXES:
            return CATEGORY_8_0_FIXES[c]
        return cat.get(c, "Cn") if old(c, CATEGORY_VERSION) else "Cn"

    def nfd(c):
        if 0xAC00 <= c < 0xAC00 + 11172:
            return hangul_nfd(c)
        if c in dec and old(c, NORMALIZATION_VERSION):
            return [x for d in dec[c] for x in nfd(d)]
        return [c]

    pool, pool_at = [], {}

    def intern(seq):
        key = tuple(seq)
        if key not in pool_at:
            pool_at[key] = len(pool)
            pool.extend(seq)
        return pool_at[key]

    records, record_at = [], {}
    cp_record = [0] * MAX_CP
    intern([])
    for c in range(MAX_CP):
        g = cat8(c)
        flags = 0
        if (g in ("Cc", "Cf", "Co") and c not in (9, 10, 13)) or c in (0, 0xFFFD):
            flags |= FLAG_CONTROL
        if c in white:
            flags |= FLAG_WHITESPACE
        if g.startswith("P") or (c < 128 and chr(c) in ASCII_PUNCT):
            flags |= FLAG_PUNCT
        if g == "Mn":
            flags |= FLAG_MN
        if any(a <= c <= b for a, b in CJK_RANGES):
            flags |= FLAG_CJK
        k = ccc.get(c, 0) if old(c, NORMALIZATION_VERSION) else 0
        d = nfd(c) if not (0xAC00 <= c < 0xAC00 + 11172) else [c]  # Hangul: done in code
        d = d if d != [c] else []
        low = lower.get(c, [c])
        low = low if low != [c] else []
        rec = (flags, k, intern(d) if d else 0, len(d), intern(low) if low else 0, len(low))
        if rec not in record_at:
            record_at[rec] = len(records)
            records.append(rec)
        cp_record[c] = record_at[rec]
    assert len(records) < 65536 and len(pool) < 65536
    assert max(r[3] for r in records) < 256

    blocks, block_at, stage1 = [], {}, []
    for b in range(MAX_CP // BLOCK):
        blk = tuple(cp_record[b * BLOCK:(b + 1) * BLOCK])
        if blk not in block_at:
            block_at[blk] = len(blocks)
            blocks.append(blk)
        stage1.append(block_at[blk])
    emit(records, pool, blocks, stage1, ucd)


def numbers(values, per_line=16):
    vals = list(values)
    return "\n".join("    " + " ".join("%d," % v for v in vals[i:i + per_line]) for i in range(0, len(vals), per_line))


def ucd_version(ucd):
    """'15.0.0', from DerivedAge.txt's first line ('# DerivedAge-15.0.0.txt')."""
    with open(os.path.join(ucd, "DerivedAge.txt"), encoding="utf-8") as f:
        first = f.readline().strip()
    return first[len("# DerivedAge-"):-len(".txt")] if first.startswith("# DerivedAge-") else "(unknown version)"


def emit(records, pool, blocks, stage1, ucd):
    w = sys.stdout.write
    w("/* unicode_tables.c: GENERATED by scripts/gen_unicode_tables.py from the Unicode\n"
      " * Character Database %s (Debian's unicode-data). Do not edit.\n"
      " *\n"
      " * Categories as of Unicode 8.0, NFD as of 9.0, whitespace and lowercase as of\n"
      " * Rust's std: what Hugging Face's tokenizers uses (see the generator).\n"
      " * Lookup: imsi_unicode_props(cp) = records[blocks[stage1[cp >> %d] * %d + (cp & %d)]].\n"
      " */\n" % (ucd_version(ucd), BLOCK_SHIFT, BLOCK, BLOCK - 1))
    w('#include "unicode_tables.h"\n\n')
    w("/* (%d) flags, ccc, nfd_len, lower_len, nfd_off, lower_off */\n" % len(records))
    w("static const imsi_unicode_record records[%d] = {\n" % len(records))
    for r in records:
        w("    {%d, %d, %d, %d, %d, %d},\n" % (r[0], r[1], r[3], r[5], r[2], r[4]))
    w("};\n\n")
    w("/* (%d) NFD and lowercase sequences */\nstatic const uint32_t pool[%d] = {\n%s\n};\n\n"
      % (len(pool), len(pool), numbers(pool)))
    w("/* (%d, %d) record index per code point of each distinct block */\n" % (len(blocks), BLOCK))
    w("static const uint16_t blocks[%d] = {\n%s\n};\n\n" % (len(blocks) * BLOCK, numbers(x for b in blocks for x in b)))
    w("/* (%d) block index per 128 code points */\n" % len(stage1))
    w("static const uint16_t stage1[%d] = {\n%s\n};\n\n" % (len(stage1), numbers(stage1)))
    w("const imsi_unicode_record *imsi_unicode_props(uint32_t cp)\n{\n"
      "    if (cp >= 0x%X)\n        cp = 0xFFFF; /* a noncharacter: no properties */\n"
      "    return &records[blocks[(uint32_t)stage1[cp >> %d] * %d + (cp & %d)]];\n}\n\n"
      % (MAX_CP, BLOCK_SHIFT, BLOCK, BLOCK - 1))
    w("const uint32_t *imsi_unicode_seq(uint16_t offset)\n{\n    return &pool[offset];\n}\n")


if __name__ == "__main__":
    main()
