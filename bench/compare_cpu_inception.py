#!/usr/bin/env python3
"""compare_cpu_inception.py IMGSEARCH [--runs 5] [--images 16]: Inception-v3
features of a batch of JPEGs on the CPU, imgsearch against PyTorch eager, in
one sitting, runs alternating (issue 24's method).

imgsearch is timed as a whole process (`embed-image`, start to exit: model file
opened and checked, convolution primitives made, decode, network), once on
its default convolutions (oneDNN where built with it) and once on the strict
reference path (IMS_CPU_STRICT=1: im2col + OpenBLAS sgemm, every op strict). PyTorch runs
in its own process and is timed on the work only (torchvision's
inception_v3 built and set up first, untimed): decode + Resize(342) +
CenterCrop(299) + normalize, then the forward pass in channels_last under
inference_mode; the forward alone is printed too. Both use 2 threads (the
machine's cores). The load average is printed beside every run: a busy
machine changes both sides. Needs torch, torchvision and Pillow.
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PEER = r"""
import sys, time, glob, torch, torchvision
import torchvision.transforms as T
from PIL import Image
torch.set_num_threads(int(sys.argv[2]))
files = sorted(glob.glob(sys.argv[1] + "/*.jpg"))
model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
model = model.to(memory_format=torch.channels_last)
model.fc = torch.nn.Identity()
tf = T.Compose([T.Resize(342), T.CenterCrop(299), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
with torch.inference_mode():  # warm-up on another input: oneDNN's first-call set-up untimed
    model(torch.rand(len(files), 3, 299, 299).contiguous(memory_format=torch.channels_last))
t0 = time.perf_counter()
x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files]).contiguous(memory_format=torch.channels_last)
t1 = time.perf_counter()
with torch.inference_mode():
    y = model(x)
t2 = time.perf_counter()
assert y.shape == (len(files), 2048)
print(t2 - t0, t2 - t1)
"""


def load():
    return "%.2f" % os.getloadavg()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("imgsearch")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    from PIL import Image
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photos = sorted(glob.glob(str(ROOT / "data" / "samples" / "*.png"))) + \
            sorted(glob.glob(str(ROOT / "data" / "samples" / "*.jpg")))
        for i in range(a.images):
            Image.open(photos[i % len(photos)]).convert("RGB").resize((500, 375), Image.BICUBIC).save(
                work / ("img%03d.jpg" % i), quality=90)
        model = work / "synthetic.isw"
        subprocess.run([a.imgsearch, "convert", "--synthetic", "-o", model], check=True, capture_output=True)
        files = sorted(str(p) for p in work.glob("*.jpg"))
        ours_cmd = [a.imgsearch, "embed-image", *files, "--image-model", str(model), "--device", "cpu",
                    "--batch", str(a.images), "-o", str(work / "out.npy")]
        env_ref = dict(os.environ, IMS_CPU_STRICT="1")
        rows = {"imgsearch (oneDNN conv), whole process": [], "imgsearch (reference conv), whole process": [],
                "torch eager, decode + preprocess + forward": [], "torch eager, forward only": []}
        print("%d JPEGs 500 x 375, %d threads, %d runs alternating; load average (1 min) beside each" %
              (a.images, a.threads, a.runs))
        for r in range(a.runs):
            for name, env in (("imgsearch (oneDNN conv), whole process", None),
                              ("imgsearch (reference conv), whole process", env_ref)):
                l0 = load()
                t = time.perf_counter()
                subprocess.run(ours_cmd, check=True, capture_output=True, env=env)
                rows[name].append(time.perf_counter() - t)
                print("run %d %-45s %.3f s (load %s)" % (r + 1, name, rows[name][-1], l0))
            l0 = load()
            out = subprocess.run([sys.executable, "-c", PEER, str(work), str(a.threads)], check=True,
                                 capture_output=True, text=True).stdout.split()
            rows["torch eager, decode + preprocess + forward"].append(float(out[0]))
            rows["torch eager, forward only"].append(float(out[1]))
            print("run %d %-45s %.3f s, forward %.3f s (load %s)" % (r + 1, "torch eager", float(out[0]),
                                                                        float(out[1]), l0))
        print("\nmedians:")
        med = {k: statistics.median(v) for k, v in rows.items()}
        for k, v in med.items():
            print("  %-45s %.3f s" % (k, v))
        peer = med["torch eager, decode + preprocess + forward"]
        for k in ("imgsearch (oneDNN conv), whole process", "imgsearch (reference conv), whole process"):
            print("  ratio torch work / %s: %.2f (forward only: %.2f)" %
                  (k, peer / med[k], med["torch eager, forward only"] / med[k]))


if __name__ == "__main__":
    main()
