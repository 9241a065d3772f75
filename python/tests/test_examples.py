"""The examples run: examples/notebook.py end to end; examples/ray_index.py
with Ray Data on 2 local workers (where Ray is installed), whose features are
the bits `imgsearch embed-image` writes for the same files (with the workers'
thread count)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import imgsearch

from conftest import REPO, under_asan


def run(args, cwd):
    p = subprocess.run([sys.executable, "-X", "faulthandler", "-W", "ignore", *map(str, args)], cwd=cwd,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_list_images_is_the_indexers_walk(photos):
    listing = imgsearch.list_images(photos)
    names = [os.path.relpath(p, photos) for p in listing.paths]
    assert names == ["broken.png", "horse.png", "jpg_420.jpg", "nested/png_rgb8.png"]
    assert listing.ignored == [os.path.join(str(photos), "notes.txt")] and listing.problems == []


def test_notebook(tmp_path, photos, iv3, tiny_bert):
    out = run([REPO / "examples" / "notebook.py", photos, iv3, tiny_bert, tmp_path / "nb.idx"], tmp_path)
    assert "indexed 3 images (1 skipped" in out and "text: 'a horse in a field'" in out
    assert "(3, 2048) float16" in out and "text embeddings (2, 8)" in out


def test_ray_example_writes_the_commands_features(tmp_path, photos, iv3, cli):
    pytest.importorskip("ray", reason="Ray is not installed (make test-python PY_RAY=1 installs it)")
    if under_asan():
        pytest.skip("Ray's worker processes are not run under ASan")
    out = run([REPO / "examples" / "ray_index.py", photos, iv3, tmp_path / "ray", "--workers", 2, "--batch", 2,
               "--device", "cpu", "--threads", 1], tmp_path)
    assert "3 of 4 images embedded by 2 Ray workers" in out, out
    paths = (tmp_path / "ray" / "paths.txt").read_text().splitlines()
    assert paths == [p for p in imgsearch.list_images(photos).paths if not p.endswith("broken.png")]
    assert (tmp_path / "ray" / "failures.txt").read_text().startswith(os.path.join(str(photos), "broken.png"))
    # Ray runs its workers with OMP_NUM_THREADS=1, and the CPU backend's GEMMs (OpenBLAS) round
    # differently with another thread count: the command runs with the same, for the same bits
    cli("embed-image", *paths, "--image-model", iv3, "-o", tmp_path / "cli.npy", "--device", "cpu",
        env={"OMP_NUM_THREADS": "1"})
    assert np.array_equal(np.load(tmp_path / "ray" / "features.npy"), np.load(tmp_path / "cli.npy"))
