#!/usr/bin/env python3
"""compare_tokenizers.py: WordPiece throughput of imgsearch (bench_tokenizer)
and Hugging Face's tokenizers on the same lines, one thread each, same run.

  python3 bench/compare_tokenizers.py --bench build/bench/bench_tokenizer \
      [--vocab tests/fixtures/tokenizer/vocab.txt] [--text tests/fixtures/tokenizer/corpus.txt] [--seconds 3]

tokenizers runs encode_batch over all lines with RAYON_NUM_THREADS=1 (one
thread; per-line encode() calls would mostly time Python), truncation at 256,
repeated for at least the same number of seconds. Prints MB/s of input text
for both and the ratio imgsearch / tokenizers.
"""
import argparse
import os
import subprocess
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "tests", "fixtures", "tokenizer")


def hf_mb_per_s(vocab, lines, seconds):
    from tokenizers import BertWordPieceTokenizer
    tok = BertWordPieceTokenizer(vocab)
    tok.enable_truncation(256)
    nbytes = sum(len(x.encode("utf-8")) for x in lines)
    tok.encode_batch(lines[:100])  # warm up
    t0 = time.perf_counter()
    passes = 0
    while True:
        tok.encode_batch(lines)
        passes += 1
        t = time.perf_counter() - t0
        if t >= seconds:
            return nbytes * passes / t / 1e6, len(lines) * passes / t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--vocab", default=os.path.join(FIX, "vocab.txt"))
    ap.add_argument("--text", default=os.path.join(FIX, "corpus.txt"))
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    with open(a.text, "rb") as f:
        lines = [x.decode("utf-8", errors="replace") for x in f.read().split(b"\n")[:-1]]
    out = subprocess.run([a.bench, "--seconds", str(a.seconds), a.vocab, a.text], check=True,
                         stdout=subprocess.PIPE).stdout.decode().split()
    ours = dict(zip(out[0::2], out[1::2]))
    ims_mb, ims_lps = float(ours["mb_per_s"]), float(ours["lines_per_s"])
    hf_mb, hf_lps = hf_mb_per_s(a.vocab, lines, a.seconds)
    import tokenizers
    print("text: %s (%d lines), one thread each" % (os.path.relpath(a.text), len(lines)))
    print("tokenizers %-8s %8.2f MB/s %10.0f lines/s" % (tokenizers.__version__, hf_mb, hf_lps))
    print("imgsearch           %8.2f MB/s %10.0f lines/s" % (ims_mb, ims_lps))
    print("ratio imgsearch / tokenizers: %.2fx" % (ims_mb / hf_mb))


if __name__ == "__main__":
    sys.exit(main())
