#!/usr/bin/env python3
"""compare_faiss.py: imgsearch's CPU k-NN search against faiss-cpu IndexFlatIP.

Both run on the same random unit vectors in the same run, each on 2 threads
(OMP_NUM_THREADS / OPENBLAS_NUM_THREADS for bench_knn, faiss.omp_set_num_threads
for FAISS), fp32 storage, exact search. For each shape it prints queries/s of
both, the ratio (ours / faiss; > 1 is faster) and the fraction of ids that
agree (1.0 up to exact ties; both are exact).

usage: compare_faiss.py BENCH_KNN [--seconds S] [--shapes full|quick]
(pip install faiss-cpu numpy; shapes are the issue's, scaled down for a CPU.)
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import faiss
except ImportError:
    sys.exit("compare_faiss.py needs faiss-cpu: pip install faiss-cpu")

# (N, D, B, k)
SHAPES = {
    "quick": [(100_000, 384, 1, 10), (100_000, 384, 16, 10), (100_000, 384, 256, 10)],
    "issue24": [(300_000, 384, 64, 10)],  # issue 24's table: exact k-NN, N = 300k, D = 384, B = 64, k = 10
    "full": [
        (200_000, 384, 1, 10), (200_000, 384, 16, 10), (200_000, 384, 1, 1000), (200_000, 384, 16, 1000),
        (200_000, 384, 256, 10), (50_000, 384, 1024, 10), (50_000, 384, 1024, 1000),
        (50_000, 2048, 1, 10), (50_000, 2048, 16, 10), (50_000, 2048, 256, 1000),
    ],
}


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def time_faiss(index, q, k, seconds):
    index.search(q, k)  # warm-up
    n, t0 = 0, time.perf_counter()
    while True:
        _, ids = index.search(q, k)
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds:
            return el / n, ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench_knn")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--shapes", default="full", choices=sorted(SHAPES))
    a = ap.parse_args()
    faiss.omp_set_num_threads(2)
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    rng = np.random.default_rng(0)
    print(f"faiss {faiss.__version__}, 2 threads each; fp32 tables; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'N':>8} {'D':>5} {'B':>5} {'k':>5} | {'faiss q/s':>10} {'ours q/s':>10} {'ratio':>6} | {'ours GB/s':>9} {'ids agree':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = {}
        for n, d, b, k in SHAPES[a.shapes]:
            if (n, d) not in cache:
                cache.clear()
                cache[(n, d)] = unit(rng, n, d)
                np.save(f"{tmp}/t.npy", cache[(n, d)])
                index = faiss.IndexFlatIP(d)
                index.add(cache[(n, d)])
            q = unit(rng, b, d)
            np.save(f"{tmp}/q.npy", q)
            out = subprocess.run([a.bench_knn, f"{tmp}/t.npy", f"{tmp}/q.npy", "-k", str(k), "--dtype", "f32",
                                  "--seconds", str(a.seconds), "--out", f"{tmp}/ids.npy"],
                                 env=env, check=True, capture_output=True, text=True).stdout
            fields = dict(f.split("=") for f in out.split())
            ours = float(fields["qps"])
            per, fids = time_faiss(index, q, k, a.seconds)
            theirs = b / per
            agree = float((np.load(f"{tmp}/ids.npy") == fids).mean())
            print(f"{n:>8} {d:>5} {b:>5} {k:>5} | {theirs:>10.1f} {ours:>10.1f} {ours / theirs:>5.2f}x |"
                  f" {float(fields['gbps']):>9.2f} {agree:>9.4f}", flush=True)


if __name__ == "__main__":
    main()
