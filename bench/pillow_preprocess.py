#!/usr/bin/env python3
"""pillow_preprocess.py: the Pillow baseline for bench_preprocess, and the driver
that runs both on the same files and prints the ratio.

    python3 bench/pillow_preprocess.py [--bench build/bench/bench_preprocess]
        [--images /work/shared/data/images] [--seconds 2]

Sets: the sample images; JPEGs of 500x375 and 4000x3000 at quality 90, and
WebP (lossy quality 80, lossless) and TIFF (LZW, Deflate, uncompressed) of
500x375 and 2000x1500, made here in a temporary folder from a sample photo
(Lanczos resize). Per image: Image.open + convert('RGB') + Resize(342) +
CenterCrop(299), one thread (images/s per core). With --bench, runs the C
benchmark (one thread too, OMP_NUM_THREADS=1) on the same files and prints
C/Pillow. --only NAME,... runs only those sets.

Without torchvision (it needs torch), Resize and CenterCrop are done as
torchvision does them on a PIL image: Pillow's bilinear resize of the short
side (antialiased), then a crop at round((size - crop) / 2); the same Pillow
calls, so the timing is Pillow's either way. The header line says which ran.
"""
import argparse
import os
import subprocess
import tempfile
import time

from PIL import Image

try:
    import torchvision.transforms as T

    TRANSFORMS = "torchvision"
except ImportError:
    T = None
    TRANSFORMS = "Pillow calls as torchvision makes them (no torchvision here)"


class PilResizeCrop:
    """T.Compose([T.Resize(size), T.CenterCrop(crop)]) for PIL images."""

    def __init__(self, size, crop):
        self.size, self.crop = size, crop

    def __call__(self, im):
        w, h = im.size
        short, long_ = (w, h) if w <= h else (h, w)
        new_long = int(self.size * long_ / short)
        ow, oh = (self.size, new_long) if w <= h else (new_long, self.size)
        im = im.resize((ow, oh), Image.Resampling.BILINEAR)
        left, top = int(round((ow - self.crop) / 2.0)), int(round((oh - self.crop) / 2.0))
        return im.crop((left, top, left + self.crop, top + self.crop))


def make_sets(src, folder):
    base = Image.open(src).convert("RGB")
    sets = {}
    for w, h in [(500, 375), (4000, 3000)]:
        path = os.path.join(folder, f"gen_{w}x{h}.jpg")
        base.resize((w, h), Image.Resampling.LANCZOS).save(path, quality=90)
        sets[f"jpeg{w}x{h}"] = [path]
    for w, h in [(500, 375), (2000, 1500)]:
        im = base.resize((w, h), Image.Resampling.LANCZOS)
        for name, ext, kw in [("webp", "webp", dict(quality=80)), ("webp_lossless", "webp", dict(lossless=True)),
                              ("tiff_lzw", "tif", dict(compression="tiff_lzw")),
                              ("tiff_deflate", "tif", dict(compression="tiff_adobe_deflate")),
                              ("tiff_raw", "tif", {})]:
            path = os.path.join(folder, f"gen_{name}_{w}x{h}.{ext}")
            im.save(path, **kw)
            sets[f"{name}{w}x{h}"] = [path]
    return sets


def pillow_ips(files, seconds):
    tf = T.Compose([T.Resize(342), T.CenterCrop(299)]) if T else PilResizeCrop(342, 299)
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
    ap.add_argument("--only", help="comma-separated set names")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"samples": sorted(os.path.join(a.images, f) for f in os.listdir(a.images))}
        sets.update(make_sets(os.path.join(a.images, "coffee.png"), tmp))
        if a.only:
            sets = {n: f for n, f in sets.items() if n in a.only.split(",")}
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
    print(f"images/s, one thread (Resize 342 + CenterCrop 299; Pillow side: {TRANSFORMS})")
    print(f"{'set':<16}{'files':>6}{'Pillow':>10}{'C dec+pre':>11}{'ratio':>8}{'C pre only':>12}")
    for name, files in sets.items():
        line = f"{name:<16}{len(files):>6}{pil[name]:>10.1f}"
        if name in c:
            line += f"{c[name][0]:>11.1f}{c[name][0] / pil[name]:>7.2f}x{c[name][1]:>12.1f}"
        print(line)


if __name__ == "__main__":
    main()
