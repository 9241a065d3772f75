#!/usr/bin/env python3
"""test_cli_fid_golden.py IMGSEARCH FIXTURES: `imgsearch fid` against the
scores pytorch-fid, clean-fid and torch-fidelity computed themselves, end to
end on the same image folders with the same full-size FID Inception weights
(tests/fixtures/fid_golden: make_golden.py says how; this test needs neither
torch nor the packages).

The folders and the weights are rebuilt here from the sample photos and the
committed generator inputs (tests/cli/fid_data.py, layers.txt, bn_stats.npz),
and their CRCs checked against the goldens', so a difference in the inputs is
named as such. Then, on the CPU in float32:
  mode fid    A vs B: FID within 1e-3 relative of pytorch-fid's
  mode clean  A vs B: FID and KID (subsets of the whole sets) within 1e-3 of clean-fid's
  mode clean  A299 vs B299: FID, KID (50 subsets of 20, seed 2020) and both
              Inception Scores (5 splits) within 1e-3 of torch-fidelity's
and the statistics files: A299's and B299's .npz give the folders' FID exactly.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fid_data  # noqa: E402

TOLERANCE = 1e-3
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


def close(name, got, want, tol=TOLERANCE):
    r = abs(got - want) / max(abs(want), 1e-300)
    check(name, r <= tol, "%.10g vs %.10g (relative %.2g)" % (got, want, r))


def main():
    global IMGSEARCH
    IMGSEARCH, fixtures = sys.argv[1], Path(sys.argv[2])
    gold_dir = fixtures / "fid_golden"
    gold = json.loads((gold_dir / "goldens.json").read_text())
    samples = HERE.parents[1] / "data" / "samples"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run("preprocess", *sorted(samples.glob("*.png")), "-o", work / "photos.npy", "--uint8")
        photos = np.load(work / "photos.npy")
        crc = fid_data.pixels_crc({"photos": [("photos", photos)]})
        check("the photos are the goldens'", crc == gold["inputs"]["photos_crc"], crc)
        made = fid_data.make_folders(work, photos)
        made.update(fid_data.make_square_folders(work, photos))
        crc = fid_data.pixels_crc(made)
        check("the folders are the goldens'", crc == gold["inputs"]["pixels_crc"], crc)

        layers = fid_data.read_layers(gold_dir / "layers.txt")
        with np.load(gold_dir / "bn_stats.npz") as bn:
            sd = fid_data.fid_state_dict(layers, dict(bn))
        fid_data.write_safetensors(work / "fid.safetensors", sd)
        del sd
        model = work / "fid.isw"
        run("convert", work / "fid.safetensors", "-o", model)
        dev = ("--image-model", model, "--device", "cpu")

        # pytorch-fid: its preprocessing and network (the model's default mode)
        p = run("fid", work / "A", work / "B", *dev, "--json")
        out = json.loads(p.stdout)
        check("mode fid, 50 + 50 images", [i["mode"] for i in out["inputs"]] == ["fid", "fid"] and
              [i["images"] for i in out["inputs"]] == [50, 50], p.stdout)
        close("FID (fid mode) = pytorch-fid's", out["fid"], gold["pytorch_fid"]["fid"])

        # clean-fid: its resize and normalization; KID over subsets of the whole sets
        p = run("fid", work / "A", work / "B", *dev, "--mode", "clean", "--kid", "--kid-subsets", 1,
                "--kid-subset-size", fid_data.FOLDER_IMAGES, "--json")
        out = json.loads(p.stdout)
        check("mode clean", [i["mode"] for i in out["inputs"]] == ["clean", "clean"], p.stdout)
        close("FID (clean mode) = clean-fid's", out["fid"], gold["clean_fid"]["fid"])
        close("KID (clean mode) = clean-fid's", out["kid"]["mean"], gold["clean_fid"]["kid"])

        # torch-fidelity on 299 x 299 images: FID, KID with its subsets, IS of each side
        tf = gold["torch_fidelity"]
        p = run("fid", work / "A299", work / "B299", *dev, "--mode", "clean", "--kid", "--kid-subsets",
                tf["kid_subsets"], "--kid-subset-size", tf["kid_subset_size"], "--seed", tf["seed"], "--is",
                "--is-splits", tf["is_splits"], "--json")
        out = json.loads(p.stdout)
        fid_299 = out["fid"]
        close("FID (299 x 299) = torch-fidelity's", out["fid"], tf["fid"])
        close("KID mean = torch-fidelity's", out["kid"]["mean"], tf["kid_mean"])
        close("KID std = torch-fidelity's", out["kid"]["std"], tf["kid_std"])
        for i, side in enumerate("ab"):
            close("IS %s mean = torch-fidelity's" % side.upper(), out["inputs"][i]["is"]["mean"],
                  tf["is_%s_mean" % side])
            close("IS %s std = torch-fidelity's" % side.upper(), out["inputs"][i]["is"]["std"], tf["is_%s_std" % side])

        # statistics files: saved per folder, compared: the folders' FID again
        for side in ("A299", "B299"):
            run("fid", work / side, *dev, "--mode", "clean", "--save-stats", work / (side + ".npz"))
        p = run("fid", work / "A299.npz", work / "B299.npz", "--json")
        got = json.loads(p.stdout)["fid"]
        check("FID from the .npz files = from the folders", got == fid_299, "%r vs %r" % (got, fid_299))
    if FAILURES:
        print("%d failed: %s" % (len(FAILURES), ", ".join(FAILURES)))
        sys.exit(1)
    print("all passed")


if __name__ == "__main__":
    main()
