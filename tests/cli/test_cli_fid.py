#!/usr/bin/env python3
"""test_cli_fid.py IMGSEARCH FIXTURES: `imgsearch fid` against float64 references
on the same features.

Two folders of 50 images (crops, and noisy crops, of the sample photos; B also
holds one broken file) go through the small FID Inception fixture
(inception/fid_zip.pt: pytorch-fid's layout, widths / 16, 128-d features).
`embed-image` gives the same images' features and logits; from them:
  FID  the reference tools' own code where it is installed: pytorch-fid's
       calculate_frechet_distance and clean-fid's frechet_distance (scipy's
       sqrtm of S1 S2), read from their installed sources and run without
       torch; always a numpy route (the eigenvalues of S1 S2).
  KID  torch-fidelity's mmd2 / kernel_poly when installed, else the same
       estimator in numpy, on the subsets numpy's RandomState(seed) draws
       (torch-fidelity's rule); clean-fid's kernel_distance with the global
       seed set (it draws y's subset first, so it gets the inputs swapped).
  IS   torch-fidelity's isc_features_to_metric in numpy (it needs torch to
       run as is), on the logits without fc's bias.
Then the .npz files both ways (ours read by numpy; numpy's savez and
savez_compressed, float32 mu as pytorch-fid writes it, read by us), the mode
check, and the failures. The fixture's random weights give features of
small spread (FID ~1e-3), so the tolerances are relative.
"""
import ast
import importlib.util
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "format"))
import check_format  # noqa: E402  (the weight-file reader: fc.bias)
from fid_data import make_folders, write_png  # noqa: E402  (the folders the goldens use too)

FAILURES = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""))
    if not ok:
        FAILURES.append(name)


def run(*args, want=0):
    p = subprocess.run([IMGSEARCH, *map(str, args)], capture_output=True, text=True)
    if p.returncode != want:
        print(p.stdout, p.stderr, sep="\n")
    check("exit %d: %s" % (want, " ".join(map(str, args[:3]))), p.returncode == want, "got %d" % p.returncode)
    return p


def load_function(package, module, name, extra=None, names=None):
    """A function from an installed package's source, without importing the
    package (its modules import torch): parsed, then run in a namespace with
    numpy and scipy.linalg. None when the package or scipy is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    src = Path(spec.origin).parent / module
    tree = ast.parse(src.read_text())
    fns = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in (name, *(extra or []))]
    try:
        from scipy import linalg
    except ImportError:
        return None
    ns = {"np": np, "linalg": linalg, **(names or {})}
    exec(compile(ast.Module(body=fns, type_ignores=[]), str(src), "exec"), ns)
    return ns[name]


def stats(f):
    f64 = f.astype(np.float64)
    return f64.mean(axis=0), np.cov(f64, rowvar=False)


def fid_numpy(m1, s1, m2, s2):
    """tr sqrt(S1 S2) from the eigenvalues of the (non-symmetric) product."""
    ev = np.linalg.eigvals(s1 @ s2)
    tr = np.sqrt(np.clip(ev.real, 0, None)).sum()
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)


def kid_numpy(f1, f2, subsets, size, seed, dtype):
    """torch-fidelity's KID loop with its kernel and unbiased MMD, in dtype."""
    def vassert(ok, msg):
        assert ok, msg

    kw = {"kid_kernel_poly_degree": 3, "kid_kernel_poly_gamma": None, "kid_kernel_poly_coef0": 1}
    shims = {"vassert": vassert, "get_kwarg": lambda name, kwargs: kw[name]}
    fns = load_function("torch_fidelity", "metric_kid.py", "mmd2", names=shims)
    poly = load_function("torch_fidelity", "metric_kid.py", "kernel_poly", names=shims)
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), size, replace=False)].astype(dtype)
        y = f2[rng.choice(len(f2), size, replace=False)].astype(dtype)
        k = poly or (lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3)
        kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
        if fns:
            out.append(fns(kxx, kxy, kyy))
        else:
            m = size
            out.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) -
                       2 * kxy.sum() / (m * m))
    return float(np.mean(out)), float(np.std(out)), fns is not None


def is_numpy(logits, splits, seed):
    """torch-fidelity's isc_features_to_metric, in numpy float64."""
    n = len(logits)
    f = logits[np.random.RandomState(seed).permutation(n)].astype(np.float64)
    lse = np.log(np.exp(f - f.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)) + f.max(axis=1, keepdims=True)
    logp = f - lse
    p = np.exp(logp)
    scores = []
    for i in range(splits):
        pc, lc = p[i * n // splits:(i + 1) * n // splits], logp[i * n // splits:(i + 1) * n // splits]
        q = pc.mean(axis=0, keepdims=True)
        scores.append(np.exp((pc * (lc - np.log(q))).sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def main():
    global IMGSEARCH
    IMGSEARCH, fixtures = sys.argv[1], Path(sys.argv[2])
    samples = Path(__file__).resolve().parents[2] / "data" / "samples"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "fid.isw"
        run("convert", fixtures / "inception" / "fid_zip.pt", "-o", model)
        photos_npy = work / "photos.npy"
        run("preprocess", *sorted(samples.glob("*.png")), "-o", photos_npy, "--uint8")
        make_folders(work, np.load(photos_npy))
        (work / "B" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
        dev = ("--image-model", model, "--device", "cpu")

        # FID, KID and IS in one run; B's broken file is reported and skipped (exit 3)
        p = run("fid", work / "A", work / "B", *dev, "--kid", "--kid-subsets", 20, "--kid-subset-size", 30,
                "--is", "--is-splits", 5, "--json", want=3)
        check("broken file reported", "broken.png" in p.stderr, p.stderr.strip()[-200:])
        out = json.loads(p.stdout)
        a_in, b_in = out["inputs"]
        check("images used", a_in["images"] == 50 and b_in["images"] == 50 and b_in["failed"] == 1,
              "%s %s" % (a_in, b_in))
        check("mode fid", a_in["mode"] == "fid" and b_in["mode"] == "fid")

        feats, logits = {}, {}
        for side in "AB":
            files = sorted(str(f) for f in (work / side).glob("*.png") if f.name != "broken.png")
            run("embed-image", *files, *dev, "-o", work / (side + "f.npy"))
            run("embed-image", *files, *dev, "--what", "logits", "-o", work / (side + "l.npy"))
            feats[side] = np.load(work / (side + "f.npy"))
            logits[side] = np.load(work / (side + "l.npy"))
        check("features vary", feats["A"].std(axis=0).max() > 0 and not np.array_equal(feats["A"], feats["B"]))

        (ma, sa), (mb, sb) = stats(feats["A"]), stats(feats["B"])
        want = fid_numpy(ma, sa, mb, sb)
        # 1e-6: the routes differ only in rounding, amplified by the square
        # roots of the ~78 near-zero eigenvalues (50 images, 128 dims)
        check("FID = numpy eigenvalue route", rel(out["fid"], want) < 1e-6, "%.12g vs %.12g" % (out["fid"], want))
        for pkg, mod, fn in (("pytorch_fid", "fid_score.py", "calculate_frechet_distance"),
                             ("cleanfid", "fid.py", "frechet_distance")):
            f = load_function(pkg, mod, fn)
            if f is None:
                print("SKIPPED %s.%s: %s or scipy is not installed" % (pkg, fn, pkg))
                continue
            ref = float(f(ma.astype(np.float32) if pkg == "pytorch_fid" else ma, sa,
                          mb.astype(np.float32) if pkg == "pytorch_fid" else mb, sb))
            # the parity bar; scipy's sqrtm on singular products is the less exact side
            check("FID = %s's %s" % (pkg, fn), rel(out["fid"], ref) < 1e-3, "%.12g vs %.12g" % (out["fid"], ref))

        km, ks, real = kid_numpy(feats["A"], feats["B"], 20, 30, 2020, np.float64)
        check("KID = torch-fidelity's (%s)" % ("its mmd2" if real else "numpy"),
              rel(out["kid"]["mean"], km) < 1e-9 and rel(out["kid"]["std"], ks) < 1e-6,
              "%.12g +- %.6g vs %.12g +- %.6g" % (out["kid"]["mean"], out["kid"]["std"], km, ks))
        km32, _, _ = kid_numpy(feats["A"], feats["B"], 20, 30, 2020, np.float32)
        check("KID near torch-fidelity's float32 arithmetic", abs(out["kid"]["mean"] - km32) < 1e-3 * abs(km) + 1e-9)
        kd = load_function("cleanfid", "fid.py", "kernel_distance")
        if kd is None:
            print("SKIPPED cleanfid.kernel_distance: clean-fid or scipy is not installed")
        else:
            for dt, tol in ((np.float64, 1e-9), (np.float32, 1e-3)):
                # float32: clean-fid's own arithmetic on float32 features (the 1e-3 bar)
                np.random.seed(2020)
                ck = kd(feats["B"].astype(dt), feats["A"].astype(dt), num_subsets=20, max_subset_size=30)
                check("KID = clean-fid's in %s (seeded, inputs swapped)" % np.dtype(dt).name,
                      rel(out["kid"]["mean"], ck) < tol, "%.12g vs %.12g" % (out["kid"]["mean"], ck))

        info = check_format.read_isw(str(model))
        bias = np.array(check_format.tensor_values(str(model), info, "fc.bias"), dtype=np.float32)
        for side, rec in (("A", a_in), ("B", b_in)):
            im, isd = is_numpy(logits[side] - bias, 5, 2020)
            check("IS %s = torch-fidelity's" % side, abs(rec["is"]["mean"] - im) < 1e-9 * im and
                  abs(rec["is"]["std"] - isd) < 1e-9 + 1e-6 * isd,
                  "%.12g +- %.6g vs %.12g +- %.6g" % (rec["is"]["mean"], rec["is"]["std"], im, isd))

        # our statistics file, read by numpy as pytorch-fid reads it
        run("fid", work / "A", *dev, "--save-stats", work / "a.npz")
        z = np.load(work / "a.npz")
        check("npz keys and dtypes", z["mu"].dtype == np.float64 and z["sigma"].shape == (128, 128) and
              bytes(z["imgsearch_mode"]) == b"fid" and int(z["imgsearch_count"][0]) == 50)
        check("npz mu, sigma = float64 references",
              np.abs(z["mu"] - ma).max() <= 1e-12 * np.abs(ma).max() and
              np.abs(z["sigma"] - sa).max() <= 1e-9 * np.abs(sa).max())

        # numpy's files (pytorch-fid writes float32 mu, compressed) read by us
        np.savez_compressed(work / "b_pf.npz", mu=mb.astype(np.float32), sigma=sb)
        np.savez(work / "b_plain.npz", mu=mb, sigma=sb)
        p = run("fid", work / "a.npz", work / "b_plain.npz", "--json")
        check("fid of two files = fid of the folders", rel(json.loads(p.stdout)["fid"], out["fid"]) < 1e-6)
        check("another tool's file noted", "does not record its mode" in p.stderr)
        p = run("fid", work / "A", work / "b_pf.npz", *dev, "--json")
        r = json.loads(p.stdout)["fid"]
        check("savez_compressed, float32 mu", rel(r, fid_numpy(ma, sa, mb.astype(np.float32), sb)) < 1e-6)

        # modes do not mix unless forced
        run("fid", work / "A", *dev, "--mode", "torchvision", "--save-stats", work / "a_tv.npz")
        p = run("fid", work / "a.npz", work / "a_tv.npz", want=1)
        check("mode mismatch named", "mode fid" in p.stderr and "mode torchvision" in p.stderr, p.stderr.strip())
        run("fid", work / "a.npz", work / "a_tv.npz", "--force")
        p = run("fid", work / "a.npz", work / "a.npz", "--json")
        check("fid of a set with itself is ~0", abs(json.loads(p.stdout)["fid"]) < 1e-9)

        # failures: one line each
        idx = work / "idx"
        idx.mkdir()
        (idx / "manifest.json").write_text("{}")
        p = run("fid", idx, work / "A", *dev, want=1)
        check("an index is refused with the reason", "L2-normalized" in p.stderr)
        run("fid", work / "A", want=2)
        p = run("fid", work / "A", work / "B", want=1)
        check("images need a model", "--image-model" in p.stderr)
        (work / "junk.npz").write_bytes(os.urandom(300))
        p = run("fid", work / "junk.npz", work / "a.npz", want=1)
        check("junk .npz: one line", p.stderr.count("\n") == 1 and "junk.npz" in p.stderr, p.stderr)
        np.savez(work / "nomu.npz", sigma=sb)
        p = run("fid", work / "nomu.npz", work / "a.npz", want=1)
        check("no mu named", "'mu'" in p.stderr, p.stderr)
        p = run("fid", work / "a.npz", work / "b_plain.npz", "--kid", want=1)
        check("--kid needs images", "needs the images" in p.stderr)
        run("fid", work / "nothing", work / "A", *dev, want=1)
        # clean mode's images against fid mode's statistics: refused naming both, unless --force
        p = run("fid", work / "A", work / "a.npz", *dev, "--mode", "clean", want=1)
        check("clean vs fid refused naming both modes", "mode clean" in p.stderr and "mode fid" in p.stderr, p.stderr)
        p = run("fid", work / "A", work / "a.npz", *dev, "--mode", "clean", "--force", "--json")
        check("--force compares them", json.loads(p.stdout)["inputs"][0]["mode"] == "clean", p.stdout)
    if FAILURES:
        print("%d failed: %s" % (len(FAILURES), ", ".join(FAILURES)))
        sys.exit(1)
    print("all passed")


if __name__ == "__main__":
    main()
