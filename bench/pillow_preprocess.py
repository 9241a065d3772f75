#!/usr/bin/env python3
"""pillow_preprocess.py: the Pillow baseline for bench_preprocess, and the driver
that runs both on the same files and prints the ratio.

    python3 bench/pillow_preprocess.py [--bench build/bench/bench_preprocess]
        [--images /work/shared/data/images] [--seconds 2]

Sets: the sample images; JPEGs of 500x375 and 4000x3000 at quality 90, made
here in a temporary folder from a sample photo (Lanczos resize). Per image:
Image.open + convert('RGB') + Resize(342) + CenterCrop(299), one thread
(images/s per core). With --bench, runs the C benchmark (one thread too,
OMP_NUM_THREADS=1) on the same files and prints C/Pillow.
"""
import argparse
import os
import subprocess
import tempfile
import time

from PIL import Image
import torchvision.transforms as T


def make_jpegs(src, folder):
    base = Image.open(src).convert("RGB")
    sets = {}
    for w, h in [(500, 375), (4000, 3000)]:
        path = os.path.join(folder, f"gen_{w}x{h}.jpg")
        base.resize((w, h), Image.Resampling.LANCZOS).save(path, quality=90)
        sets[f"jpeg{w}x{h}"] = [path]
    return sets


def pillow_ips(files, seconds):
    tf = T.Compose([T.Resize(342), T.CenterCrop(299)])
    count, t0 = 0, time.perf_counter()
    t = t0
    while t - t0 < seconds:
        for f in files:
            with Image.open(f) as im:
                out = tf(im.convert("RGB"))
            assert out.size == (299, 299)
            count += 1
        t = time.perf_counter()
    return count / (t - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", help="path of the bench_preprocess binary")
    ap.add_argument("--images", default="/work/shared/data/images")
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"samples": sorted(os.path.join(a.images, f) for f in os.listdir(a.images))}
        sets.update(make_jpegs(os.path.join(a.images, "coffee.png"), tmp))
        pil = {name: pillow_ips(files, a.seconds) for name, files in sets.items()}
        c = {}
        if a.bench:
            args = [a.bench, "--seconds", str(a.seconds)] + [f"{n}={','.join(f)}" for n, f in sets.items()]
            env = dict(os.environ, OMP_NUM_THREADS="1")
            res = subprocess.run(args, capture_output=True, text=True, env=env)
            if res.returncode != 0:
                raise SystemExit(f"bench_preprocess failed: {res.stderr.strip()}")
            for line in res.stdout.splitlines():
                p = line.split()
                if p and p[0] == "set":
                    c[p[1]] = (float(p[5]), float(p[7]))
    print("images/s, one thread (Resize 342 + CenterCrop 299)")
    print(f"{'set':<16}{'files':>6}{'Pillow':>10}{'C dec+pre':>11}{'ratio':>8}{'C pre only':>12}")
    for name, files in sets.items():
        line = f"{name:<16}{len(files):>6}{pil[name]:>10.1f}"
        if name in c:
            line += f"{c[name][0]:>11.1f}{c[name][0] / pil[name]:>7.2f}x{c[name][1]:>12.1f}"
        print(line)


if __name__ == "__main__":
    main()
