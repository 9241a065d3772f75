#!/usr/bin/env python3
"""npy_numpy_check.py: numpy.load reads what engine/io/npy.c writes.

Runs test_npy (which writes .npy and .npz files into SCRATCH), then loads them
with numpy and compares shapes, dtypes and values with what test_npy wrote.
Exit 77 (skip) when numpy is missing: CI machines may not have it.
usage: npy_numpy_check.py TEST_NPY SCRATCH
"""
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("SKIPPED: numpy is not installed")
    sys.exit(77)


def main():
    test_npy, scratch = sys.argv[1], sys.argv[2]
    subprocess.run([test_npy, scratch], check=True, stdout=subprocess.DEVNULL)
    z = np.load(f"{scratch}/out.npz")
    assert sorted(z.files) == ["ids", "scores"], z.files
    assert z["ids"].dtype == np.int64 and z["ids"].shape == (2, 3)
    assert z["ids"].tolist() == [[5, 1, -1], [7, 0, 2]], z["ids"]
    s = z["scores"]
    assert s.dtype == np.float32 and s.shape == (2, 3)
    assert s[0, 0] == np.float32(0.9) and np.isneginf(s[0, 2]) and s[1, 2] == 0.125, s
    e = np.load(f"{scratch}/empty.npy")
    assert e.shape == (0, 5) and e.dtype == np.float32
    sc = np.load(f"{scratch}/scalar.npy")
    assert sc.shape == () and sc.dtype == np.int64
    rt = np.load(f"{scratch}/rt.npy")  # the last round trip: int64 (2, 3, 7, 1)
    assert rt.shape == (2, 3, 7, 1) and rt.dtype == np.int64 and rt.flags.c_contiguous
    print("numpy.load read every file engine/io/npy.c wrote")


if __name__ == "__main__":
    main()
