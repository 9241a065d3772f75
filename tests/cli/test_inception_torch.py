#!/usr/bin/env python3
"""test_inception_torch.py: the issue's round trip through real PyTorch
checkpoint objects (needs torch, torchvision, pytorch-fid, numpy and Pillow;
exits 77, skipped, without them: CI has none).

For each variant, the full-size model of make_golden.py (same generated
weights) is saved with torch.save (torchvision: the legacy format; FID: zip),
converted with `imgsearch convert`, and run with `imgsearch embed-image` on the
generated images written as PNG files:
  fid: fid preprocessing of a 299 x 299 image is the identity resize, then
       2x - 1, so the outputs must match the committed float64 goldens;
  tv:  the loader resizes to 342 and crops 299, so the reference is the
       float64 model on `imgsearch preprocess --uint8` of the same files.
Tolerance: max |a - g| / max |g| <= 1e-4 for logits and features (fp32 vs
float64 through 94 layers, as tests/unit/test_inception.c).
usage: test_inception_torch.py IMGSEARCH GOLDEN_DIR
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from PIL import Image
    sys.path.insert(0, sys.argv[2])
    import make_golden as mg
except Exception as e:  # noqa: BLE001 - any missing piece means skip
    print(f"SKIPPED: {e}")
    sys.exit(77)


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)}: exit {r.returncode}\n{r.stderr}")
    return r.stdout


def rel(a, g):
    return float(np.abs(a.astype(np.float64) - g).max() / np.abs(g).max())


def main():
    imgsearch, golden = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        images = mg.images()
        paths = []
        for i, img in enumerate(images):
            p = os.path.join(tmp, f"img{i}.png")
            Image.fromarray(img).save(p)
            paths.append(p)
        for variant in ("fid", "tv"):
            cwd = os.getcwd()
            os.chdir(tmp)  # fill() writes tensors_V.txt into the current folder
            model = mg.build(variant)
            mg.fill(model, variant)
            os.chdir(cwd)
            ckpt = os.path.join(tmp, f"{variant}.pt")
            torch.save(model.state_dict(), ckpt, _use_new_zipfile_serialization=(variant == "fid"))
            isw = os.path.join(tmp, f"{variant}.isw")
            run(imgsearch, "convert", ckpt, "-o", isw)
            out = {}
            for what in ("logits", "features"):
                npy = os.path.join(tmp, f"{variant}_{what}.npy")
                run(imgsearch, "embed-image", *paths, "--image-model", isw, "-o", npy, "--what", what,
                    "--device", "cpu")
                out[what] = np.load(npy)
            if variant == "fid":
                g_logits = np.fromfile(os.path.join(golden, "logits_fid.f32"), "<f4").reshape(8, -1)
                g_feat = np.fromfile(os.path.join(golden, "features_fid.f32"), "<f4").reshape(8, -1)
            else:
                pre = os.path.join(tmp, "pre.npy")
                run(imgsearch, "preprocess", *paths, "-o", pre, "--uint8")
                x = np.load(pre).astype(np.float64) / 255.0
                x = (x - mg.MEAN) / mg.STD
                m = model.double().eval()
                feats = {}
                m.avgpool.register_forward_hook(lambda mod, i, o: feats.setdefault("f", o.flatten(1)))
                with torch.no_grad():
                    g_logits = m(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()
                g_feat = feats["f"].numpy()
            el, ef = rel(out["logits"], g_logits), rel(out["features"], g_feat)
            ok = el <= 1e-4 and ef <= 1e-4
            failed += not ok
            print(f"{variant}: torch.save -> convert -> embed-image: logits rel error {el:.3g}, "
                  f"features {ef:.3g} {'ok' if ok else 'FAIL (> 1e-4)'}")
    print(f"{2 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
