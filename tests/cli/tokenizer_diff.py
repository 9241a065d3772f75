#!/usr/bin/env python3
"""tokenizer_diff.py: differential test of `imgsearch tokenize` against Hugging
Face's tokenizers (BertWordPieceTokenizer, the same vocab, truncation at 256).

  tests/cli/tokenizer_diff.py IMGSEARCH VOCAB [--count N] [--seed S] [--codepoints] [--cased]

Random strings mix ASCII, whitespace, punctuation, accented and combining
characters, CJK, Hangul, emoji with ZWJ, controls, special-token text, long
words and invalid UTF-8 bytes, plus uniformly random code points. With
--codepoints it checks every code point (each in a few contexts) instead.
Prints each mismatch (up to 20) and exits 1 if any; exits 77 (skip) when
tokenizers is not installed. Not part of CI (it needs tokenizers).
"""
import argparse
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_escape import escape, to_text  # noqa: E402

try:
    from tokenizers import BertWordPieceTokenizer
except ImportError:
    print("SKIPPED: the tokenizers package is not installed")
    sys.exit(77)

MAX_LEN = 256

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    " \t\n\r\u00a0\u2003\u3000\u2028\u0085\u000b\u000c\u1680\u180e\u200b",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\u00bf\u00a1\u2014\u2026\u3001\u3002\u00ab\u00bb\u201c\u201d\u00a7",
    "\u00e9\u00c9\u00e8\u00fc\u00f1\u00c5\u00e6\u00f8\u0130\u0131\u00df\u1e9e\u01c5\u01c6\u03a3\u03c3\u03c2\u1f88\u0149\ufb01",
    "\u0300\u0301\u0302\u0308\u0323\u0327\u0345\u05b0\u0591\u064b\u0670\u093c\u094d\u0e31\u0e48\u20dd\u302a\u3099",
    "\u4e2d\u6587\u5b57\u65e5\u672c\u8a9e\u3042\u30a2\uf900\uf9ff\ufa0e\u3400\U00020000\U0002f800\u2e80",
    "\uac00\ud55c\uad6d\uc5b4\u1100\u1161\u11a8",
    "\U0001f600\U0001f44d\U0001f3fd\u200d\u2764\ufe0f\U0001f468\U0001f469\U0001f467\U0001f1fa\U0001f1f8",
    "\u0000\u0001\u001f\u007f\u0080\u009f\u00ad\u200c\u200d\u200e\u2060\ufeff\ue000\U000f0000\ufffd\U000e0001",
    "\u0430\u0431\u0432\u0401\u0419\u03b1\u03b2\u0386\u0390\u05d0\u05e9\u0627\u0644\u0928\u092e\u0e01\u0e32",
]
SPECIAL = ["[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", "[cls]", "[CLS", "[[SEP]]"]


def random_cp(rng):
    while True:
        c = rng.randrange(0x110000) if rng.random() < 0.5 else rng.randrange(0x3000)
        if not 0xD800 <= c < 0xE000:
            return chr(c)


def random_bytes(rng):
    parts = []
    for _ in range(rng.randrange(1, 12)):
        r = rng.random()
        if r < 0.55:
            pool = rng.choice(POOLS)
            s = "".join(rng.choice(pool) for _ in range(rng.randrange(1, 12)))
        elif r < 0.75:
            s = "".join(random_cp(rng) for _ in range(rng.randrange(1, 6)))
        elif r < 0.82:
            s = rng.choice(SPECIAL)
        elif r < 0.88:
            s = rng.choice(POOLS[0][:26] + "\u00e9") * rng.randrange(95, 130)
        elif r < 0.94:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4))))
            continue
        else:
            s = " "
        parts.append(s.encode("utf-8"))
    return b"".join(parts)


def codepoint_cases():
    for c in range(0x110000):
        if 0xD800 <= c < 0xE000:
            continue
        ch = chr(c)
        yield ("a%sb %s%s x%s\u0301 %sA" % (ch, ch, ch, ch, ch)).encode("utf-8")


def run(imgsearch, vocab, cases, cased=False):
    tok = BertWordPieceTokenizer(vocab, lowercase=not cased)
    tok.enable_truncation(MAX_LEN)
    texts = [to_text(b) for b in cases]
    expected = [e.ids for e in tok.encode_batch(texts)]
    stdin = "".join(escape(b) + "\n" for b in cases).encode("utf-8")
    cmd = [imgsearch, "tokenize", "--vocab", vocab, "--max-len", str(MAX_LEN), "--escaped"] + (["--cased"] if cased else [])
    out = subprocess.run(cmd,
                         input=stdin, stdout=subprocess.PIPE, check=True).stdout.decode().split("\n")
    bad = 0
    for i, b in enumerate(cases):
        got = [int(x) for x in out[i].split()] if i < len(out) else None
        if got != expected[i]:
            bad += 1
            if bad <= 20:
                print("MISMATCH %d: %s\n  tokenizers: %s\n  imgsearch:  %s" % (i, escape(b).encode("unicode_escape").decode(), expected[i], got))
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("imgsearch")
    ap.add_argument("vocab")
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--codepoints", action="store_true")
    ap.add_argument("--cased", action="store_true", help="no lowercasing or accent stripping (cased BERT)")
    a = ap.parse_args()
    if a.codepoints:
        cases = list(codepoint_cases())
    else:
        rng = random.Random(a.seed)
        cases = [random_bytes(rng) for _ in range(a.count)]
    bad = run(a.imgsearch, a.vocab, cases, a.cased)
    print("%d strings, %d mismatches" % (len(cases), bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
