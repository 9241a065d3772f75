#!/usr/bin/env python3
"""compare_fid.py IMGSEARCH [--dims 2048] [--images 5000 500]: the FID step
after the features, imgsearch against pytorch-fid's calculate_frechet_distance
(scipy's sqrtm of S1 S2), on the same statistics, same CPU, same run.

For each image count, two sets of correlated random features give float64
statistics (full rank with more images than dims, singular with fewer);
both sides read them from .npz files. imgsearch's time is the whole command
(process start, reading both files, two eigen-decompositions); pytorch-fid's
is its function alone, read from its installed source (it needs no torch).
Prints one line per count: both times, the ratio and both FIDs.
"""
import argparse
import ast
import importlib.util
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import linalg


def pytorch_fid_function():
    spec = importlib.util.find_spec("pytorch_fid")
    if spec is None:
        raise SystemExit("pytorch-fid is not installed (pip install --no-deps pytorch-fid)")
    src = Path(spec.origin).parent / "fid_score.py"
    tree = ast.parse(src.read_text())
    fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "calculate_frechet_distance"]
    ns = {"np": np, "linalg": linalg}
    exec(compile(ast.Module(body=fn, type_ignores=[]), str(src), "exec"), ns)
    return ns["calculate_frechet_distance"]


def features(rng, n, d, shift):
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return np.maximum(rng.normal(size=(n, d)) @ mix + shift, 0).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("imgsearch")
    ap.add_argument("--dims", type=int, default=2048)
    ap.add_argument("--images", type=int, nargs="+", default=[5000, 500])
    a = ap.parse_args()
    fid = pytorch_fid_function()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.images:
            stats = []
            for k, shift in enumerate((0.0, 0.1)):
                f = features(rng, n, a.dims, shift).astype(np.float64)
                mu, sigma = f.mean(axis=0), np.cov(f, rowvar=False)
                np.savez(Path(tmp) / ("s%d.npz" % k), mu=mu, sigma=sigma)
                stats += [mu, sigma]
            t = time.perf_counter()
            p = subprocess.run([a.imgsearch, "fid", Path(tmp) / "s0.npz", Path(tmp) / "s1.npz", "--json"],
                               capture_output=True, text=True, check=True)
            ours_s = time.perf_counter() - t
            ours = json.loads(p.stdout)["fid"]
            t = time.perf_counter()
            ref = fid(*stats)
            ref_s = time.perf_counter() - t
            print("dims %d, %d images: imgsearch %.2f s, pytorch-fid %.2f s (%.1fx); FID %.9g vs %.9g (%.1e rel)" %
                  (a.dims, n, ours_s, ref_s, ref_s / ours_s, ours, ref, abs(ours - ref) / abs(ref)))


if __name__ == "__main__":
    main()
