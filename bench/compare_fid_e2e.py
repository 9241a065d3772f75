#!/usr/bin/env python3
"""compare_fid_e2e.py IMGSEARCH [--images 1000] [--runs 1]: FID between two
folders of JPEGs end to end, imgsearch against pytorch-fid on the same CPU in
the same run, each timed as a whole process (a user's command: start, model
load, decode, network, statistics, the distance).

Needs torch, Pillow and pytorch-fid (the peer) besides numpy. The weights are
the fid goldens' full-size FID Inception (tests/cli/fid_data.py: the synthetic
generator with calibrated batch-norm statistics; the published checkpoint
cannot be downloaded here), converted for imgsearch and given to pytorch-fid
in place of its download; the two FIDs are printed so the run shows they agree.
The folders: IMAGES JPEGs of 500 x 375 (quality 90) each, random crops, flips
and noise of the sample photos; B's noisier. pytorch-fid runs its own command
line (python -m pytorch_fid, its default batch of 50 and its worker count);
imgsearch `fid A B` with its defaults on the CPU. Prints the load average
before and after, since a busy machine changes both sides.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
import fid_data  # noqa: E402

PEER = """
import sys, torch
from pytorch_fid import inception, fid_score
sd = torch.load(sys.argv[1])
inception.load_state_dict_from_url = lambda *a, **k: sd
sys.argv = ["pytorch_fid"] + sys.argv[2:]
fid_score.main()
"""


def make_jpegs(folder, n, noise, seed):
    rng = np.random.default_rng(seed)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((ROOT / "data" / "samples").glob("*.png"))]
    folder.mkdir()
    for i in range(n):
        src = photos[i % len(photos)]
        h, w = src.shape[:2]
        s = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        img = Image.fromarray(src[y:y + s, x:x + s]).resize((500, 375), Image.BILINEAR)
        a = np.asarray(img, dtype=np.float64)
        if rng.integers(0, 2):
            a = a[:, ::-1]
        a = np.clip(a + rng.normal(0, noise, a.shape), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(folder / ("%05d.jpg" % i), quality=90)


def timed(cmd, env=None):
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    s = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s" % (cmd[0], p.returncode, p.stderr[-2000:]))
    return s, p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("imgsearch")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    import torch
    gold = ROOT / "tests" / "fixtures" / "fid_golden"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_jpegs(work / "A", a.images, 4.0, 1)
        make_jpegs(work / "B", a.images, 16.0, 2)
        layers = fid_data.read_layers(gold / "layers.txt")
        with np.load(gold / "bn_stats.npz") as bn:
            sd = fid_data.fid_state_dict(layers, dict(bn))
        fid_data.write_safetensors(work / "fid.safetensors", sd)
        tsd = {k: torch.from_numpy(v) for k, v in sd.items()}
        tsd.update({k: torch.tensor(0) for k, _ in layers if k.endswith("num_batches_tracked")})
        torch.save(tsd, work / "fid.pth")
        del sd, tsd
        subprocess.run([a.imgsearch, "convert", work / "fid.safetensors", "-o", work / "fid.isw"], check=True,
                       capture_output=True)
        ours_cmd = [a.imgsearch, "fid", str(work / "A"), str(work / "B"), "--image-model", str(work / "fid.isw"),
                    "--device", "cpu", "--json"]
        peer_cmd = [sys.executable, "-c", PEER, str(work / "fid.pth"), str(work / "A"), str(work / "B"),
                    "--device", "cpu"]
        print("load average before: %.2f %.2f %.2f; %d CPUs" % (*os.getloadavg(), os.cpu_count()))
        for run in range(a.runs):
            ours_s, out = timed(ours_cmd)
            ours = json.loads(out)["fid"]
            peer_s, out = timed(peer_cmd)
            peer = float(out.strip().split()[-1])
            print("run %d, %d + %d JPEGs: imgsearch %.1f s, pytorch-fid %.1f s: %.2fx; FID %.6f vs %.6f (%.1e rel)" %
                  (run + 1, a.images, a.images, ours_s, peer_s, peer_s / ours_s, ours, peer,
                   abs(ours - peer) / abs(peer)))
        print("load average after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
