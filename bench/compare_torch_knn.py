#!/usr/bin/env python3
"""compare_torch_knn.py: imgsearch's GPU k-NN search against torch (matmul + topk, fp16).

For the device session (needs a CUDA GPU, torch, numpy). In one run:
- the floors: memory bandwidth from a device-to-device copy of 2 GiB, and the
  fp16 tensor-core rate from a large torch matmul;
- for each (N, D, B, k): torch's search (fp16 table and queries, fp32 scores
  via matmul(out_dtype) if available else fp16 matmul then float, topk), chunked
  over N so B x N fits, timed with CUDA events; then bench_knn --device cuda
  --dtype f16 on the same data (its own timing);
- per shape: queries/s of both, ours / torch, and our time against the floor:
  table bytes / bandwidth for B <= 16, 2 N D B / tensor-core rate above;
  for B > 16 also our fp16 GemmEx path (--path gemm16: queries rounded to
  f16 like torch's, where the default path is exact fp32 sgemm).
The shapes are the issue's: N = 1M and 10M, D = 384 and 2048, B = 1, 16, 256,
1024, 4096, k = 10 and 1000 (--quick runs a few). N = 10M at D = 2048 (40 GB
of f16) needs an H200-class memory and host RAM for the .npy file; skipped
when it does not fit.

usage: compare_torch_knn.py BENCH_KNN [--quick] [--seconds S] [--tmp DIR]
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch

FULL = [(n, d, b, k) for n in (1_000_000, 10_000_000) for d in (384, 2048) for b in (1, 16, 256, 1024, 4096)
        for k in (10, 1000)]
QUICK = [(1_000_000, 384, 1, 10), (1_000_000, 384, 16, 10), (1_000_000, 384, 16, 1000),
         (1_000_000, 384, 1024, 10), (1_000_000, 384, 1024, 1000)]  # one table: one .npy write


def cuda_time(fn, seconds):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    reps, total = 0, 0.0
    while total < seconds * 1e3:
        start.record()
        fn()
        end.record()
        end.synchronize()
        total += start.elapsed_time(end)
        reps += 1
    return total / reps / 1e3


def floors(seconds):
    x = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    t = cuda_time(lambda: y.copy_(x), seconds)
    bw = 2 * x.numel() / t  # read + write
    del x, y
    a = torch.randn(8192, 8192, dtype=torch.float16, device="cuda")
    t = cuda_time(lambda: a @ a, seconds)
    return bw, 2 * 8192**3 / t


def torch_search(table, q, k):
    n = table.shape[0]
    chunk = max(1, min(n, (2 << 30) // (4 * q.shape[0])))  # a B x chunk fp32 tile of at most 2 GiB
    best_s, best_i = None, None
    for r0 in range(0, n, chunk):
        s = (q @ table[r0:r0 + chunk].T).float()
        kk = min(k, s.shape[1])
        vs, vi = torch.topk(s, kk, dim=1)
        vi += r0
        if best_s is None:
            best_s, best_i = vs, vi
        else:
            cs, ci = torch.cat([best_s, vs], 1), torch.cat([best_i, vi], 1)
            best_s, sel = torch.topk(cs, min(k, cs.shape[1]), dim=1)
            best_i = torch.gather(ci, 1, sel)
    return best_s, best_i


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench_knn")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--tmp", default="/tmp")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("compare_torch_knn.py needs a CUDA GPU")
    bw, tc = floors(a.seconds)
    print(f"{torch.cuda.get_device_name()}: copy bandwidth {bw / 1e9:.0f} GB/s, fp16 matmul {tc / 1e12:.0f} TFLOP/s")
    print(f"{'N':>9} {'D':>5} {'B':>5} {'k':>5} | {'torch q/s':>10} {'ours q/s':>10} {'ratio':>6} | {'floor':>6} |"
          f" {'gemm16 q/s':>10} {'ratio':>6}")
    gen = torch.Generator(device="cuda").manual_seed(0)
    free = torch.cuda.mem_get_info()[0]
    cur = None
    for n, d, b, k in (QUICK if a.quick else FULL):
        if n * d * 2 * 2.2 > free:
            print(f"{n:>9} {d:>5} {b:>5} {k:>5} | skipped: does not fit twice in GPU memory")
            continue
        if cur != (n, d):
            table = None
            torch.cuda.empty_cache()
            t32 = torch.randn(n, d, generator=gen, device="cuda")
            t32 /= t32.norm(dim=1, keepdim=True)
            np.save(f"{a.tmp}/knn_table.npy", t32.cpu().numpy())
            table = t32.half()
            del t32
            cur = (n, d)
        q32 = torch.randn(b, d, generator=gen, device="cuda")
        q32 /= q32.norm(dim=1, keepdim=True)
        np.save(f"{a.tmp}/knn_queries.npy", q32.cpu().numpy())
        qh = q32.half()
        t_torch = cuda_time(lambda: torch_search(table, qh, k), a.seconds)
        def ours(path):
            out = subprocess.run([a.bench_knn, f"{a.tmp}/knn_table.npy", f"{a.tmp}/knn_queries.npy", "-k", str(k),
                                  "--dtype", "f16", "--device", "cuda", "--path", path, "--seconds", str(a.seconds)],
                                 check=True, capture_output=True, text=True).stdout
            return float(dict(x.split("=") for x in out.split())["ms_per_search"]) / 1e3

        t_ours = ours("auto")  # exact over the f32 queries: streaming kernel (B <= 16) or fp32 sgemm
        floor = (n * d * 2 / bw) if b <= 16 else (2 * n * d * b / tc)
        line = (f"{n:>9} {d:>5} {b:>5} {k:>5} | {b / t_torch:>10.1f} {b / t_ours:>10.1f} {t_torch / t_ours:>5.2f}x |"
                f" {floor / t_ours:>5.0%} |")
        if b > 16:  # the fp16 tensor-core GEMM (queries rounded to f16, as torch's)
            t16 = ours("gemm16")
            line += f" {b / t16:>10.1f} {t_torch / t16:>5.2f}x"
        print(line, flush=True)
    for p in ("knn_table.npy", "knn_queries.npy"):
        if os.path.exists(f"{a.tmp}/{p}"):
            os.remove(f"{a.tmp}/{p}")


if __name__ == "__main__":
    main()
