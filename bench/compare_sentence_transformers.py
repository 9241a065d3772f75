#!/usr/bin/env python3
"""compare_sentence_transformers.py: our text encoder against sentence-transformers, same run.

Usage: python3 bench/compare_sentence_transformers.py --bench build/bench/bench_text_encoder \\
           --model MODEL_DIR [--threads N] [--batch 1,32,256] [--seconds S]

Two sets of English text, both tokenized here by the model's own tokenizer:
  short: the 239 test sentences of tests/fixtures/minilm_golden that have at
         most 32 tokens, cycled to 512 sentences
  long:  128 paragraphs of several of those sentences joined, 100-256 tokens
For each set, the ids go to a temporary file, bench_text_encoder encodes them
on the CPU backend (OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = N), then
SentenceTransformer.encode (CPU, float32, torch.set_num_threads(N)) encodes the
same texts with the same batch sizes, each for at least S seconds after a
warm-up. Prints sentences/s of both and the ratio (ours / theirs).

--process IMGSEARCH --isw M.isw: issue 24's method instead. 1,000 sentences of
6-30 words (drawn with a fixed seed from the words of the same test
sentences); `imgsearch embed-text --device cpu -o OUT.npy < FILE` timed as a
whole process (model loading included) against SentenceTransformer.encode
(batch 32) timed on the work only, alternating --rounds times in one sitting;
prints each round's seconds with the 1-minute load average beside them, then
the medians and the ratio (theirs / ours), and the cosine of our embeddings
against theirs.
Needs torch and sentence-transformers (this machine only; not a CI test).
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from sentence_transformers import SentenceTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
SENTENCES = os.path.join(HERE, "..", "tests", "fixtures", "minilm_golden", "sentences.txt")


def make_sets(model):
    lines = [l.rstrip("\n") for l in open(SENTENCES, encoding="utf-8")]
    tok = model.tokenizer
    short = [s for s in lines if len(tok(s)["input_ids"]) <= 32]
    short = (short * (512 // len(short) + 1))[:512]
    long = []
    for i in range(128):
        k = 6 + i % 10
        long.append(" ".join(lines[(i * 13 + j * 7) % len(lines)] for j in range(k)))
    return {"short": short, "long": long}


def write_ids(model, texts, path):
    feats = model.tokenize(texts)
    ids, mask = feats["input_ids"], feats["attention_mask"]
    with open(path, "w") as f:
        for i in range(len(texts)):
            n = int(mask[i].sum())
            f.write(" ".join(str(int(t)) for t in ids[i, :n]) + "\n")
    lens = mask.sum(1)
    return int(lens.min()), int(lens.max()), float(lens.double().mean())


def st_rate(model, texts, batch, seconds):
    model.encode(texts[:batch], batch_size=batch)  # warm-up
    done, t0 = 0, time.perf_counter()
    while True:
        model.encode(texts, batch_size=batch, convert_to_numpy=True)
        done += len(texts)
        t = time.perf_counter() - t0
        if t >= seconds:
            return done / t


def ours(bench, model_dir, ids_path, batches, threads, seconds):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([bench, "--batch", batches, "--min-seconds", str(seconds), model_dir, ids_path],
                         env=env, check=True, capture_output=True, text=True).stdout
    rates = {}
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "batch":
            rates[int(f[1])] = float(f[7])
    return rates


def process_sentences(n=1000, seed=24):
    words = " ".join(l.strip().rstrip(".") for l in open(SENTENCES, encoding="utf-8")).split()
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(6, 30)
        out.append(" ".join(rng.choice(words) for _ in range(k)).capitalize() + ".")
    return out


def load1():
    return os.getloadavg()[0]


def process_compare(a, model):
    """Issue 24's method: our whole process against the peer's work only."""
    import numpy as np
    texts = process_sentences()
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "sentences.txt"), os.path.join(tmp, "out.npy")
        with open(src, "w", encoding="utf-8") as f:
            f.write("\n".join(texts) + "\n")
        model.encode(texts[:32], batch_size=32)  # warm-up
        ours_s, theirs_s = [], []
        for r in range(a.rounds):
            l0 = load1()
            t0 = time.perf_counter()
            with open(src, "rb") as f:
                subprocess.run([a.process, "embed-text", "--device", "cpu", "--text-model", a.isw, "-o", dst],
                               stdin=f, env=env, check=True, stdout=subprocess.DEVNULL)
            ours_s.append(time.perf_counter() - t0)
            l1 = load1()
            t0 = time.perf_counter()
            ref = model.encode(texts, batch_size=32, convert_to_numpy=True)
            theirs_s.append(time.perf_counter() - t0)
            print(f"round {r + 1}: imgsearch {ours_s[-1]:.2f} s (load {l0:.2f}), "
                  f"sentence-transformers {theirs_s[-1]:.2f} s (load {l1:.2f})", flush=True)
        mine = np.load(dst).astype(np.float64)
        ref = ref.astype(np.float64)
        cos = (mine * ref).sum(1) / np.linalg.norm(mine, axis=1) / np.linalg.norm(ref, axis=1)
    o, t = statistics.median(ours_s), statistics.median(theirs_s)
    print(f"median: imgsearch {o:.2f} s (whole process), sentence-transformers {t:.2f} s (batch 32, work only), "
          f"ratio {t / o:.2f}x; min cosine {cos.min():.7f}; load now {load1():.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--process", help="the imgsearch binary: issue 24's whole-process comparison")
    ap.add_argument("--isw", help="the converted model for --process")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bench")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", default="1,32,256")
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = SentenceTransformer(a.model, device="cpu")
    model.eval()
    if a.process:
        print(f"threads {a.threads}, torch {torch.__version__}")
        return process_compare(a, model)
    if not a.bench:
        ap.error("--bench (or --process with --isw) is needed")
    batches = [int(b) for b in a.batch.split(",")]
    print(f"threads {a.threads}, torch {torch.__version__}, sentence-transformers "
          f"{sys.modules['sentence_transformers'].__version__}")
    print("| set | tokens (min/mean/max) | batch | sentence-transformers (sent/s) | imgsearch (sent/s) | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, texts in make_sets(model).items():
            path = os.path.join(tmp, name + ".ids")
            lo, hi, mean = write_ids(model, texts, path)
            mine = ours(a.bench, a.model, path, a.batch, a.threads, a.seconds)
            for b in batches:
                theirs = st_rate(model, texts, b, a.seconds)
                r = mine.get(b, float("nan"))
                print(f"| {name} ({len(texts)}) | {lo}/{mean:.0f}/{hi} | {b} | {theirs:.1f} | {r:.1f} | "
                      f"{r / theirs:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
