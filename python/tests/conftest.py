"""Shared fixtures of the Python package's tests.

The package under test is the installed one (`pip install ./python`; `make
test-python`). The command it is compared with, bit for bit, is the
`imgsearch` of the C build: $IMS_CLI, else build/imgsearch. Models are small
or made here: the synthetic full-size Inception-v3 (`convert_synthetic`, the
weights of the torchvision goldens) and the tiny BERT fixture; the real
all-MiniLM-L6-v2 only where $IMS_MINILM_DIR names it (`make test-python`
fetches it as `make check` does). Bit-identical comparisons run both sides on
the CPU (a GPU's cuDNN may pick other algorithms from run to run).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import imgsearch

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
IMAGES = FIXTURES / "images"
# A few photographs and formats (scikit-image samples, tests/fixtures/images/LICENSES.md).
GOOD_IMAGES = ["horse.png", "jpg_420.jpg", "png_rgb8.png"]
BAD_IMAGES = ["bad_truncated.png", "bad_random.bin"]


def pytest_report_header(config):
    return [f"imgsearch package: {os.path.dirname(imgsearch.__file__)}",
            f"imgsearch library: {imgsearch.library_path()}",
            f"imgsearch command: {cli_path()}"]


def cli_path() -> Path:
    return Path(os.environ.get("IMS_CLI") or REPO / "build" / "imgsearch")


class Cli:
    """Runs the imgsearch command."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, *args, input=None, ok=(0,), env=None) -> subprocess.CompletedProcess:
        p = subprocess.run([str(self.path), *map(str, args)], input=input, capture_output=True,
                           env=None if env is None else {**os.environ, **env})
        if p.returncode not in ok:
            raise AssertionError(f"imgsearch {' '.join(map(str, args))}: exit {p.returncode}\n"
                                 f"{p.stderr.decode(errors='replace')}")
        return p


@pytest.fixture(scope="session")
def cli() -> Cli:
    path = cli_path()
    if not path.is_file():
        pytest.skip(f"the imgsearch command is not built ({path}; set IMS_CLI)")
    return Cli(path)


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("imgsearch")


@pytest.fixture(scope="session")
def iv3(work) -> Path:
    """The synthetic Inception-v3 (full size; the torchvision goldens' weights)."""
    path = work / "iv3.isw"
    imgsearch.convert_synthetic(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(work) -> Path:
    """The 2-layer BERT fixture (hidden size 8, max 12 tokens), converted."""
    path = work / "text.isw"
    imgsearch.convert(FIXTURES / "hf_tiny_bert", path)
    return path


@pytest.fixture(scope="session")
def minilm(work) -> Path:
    """The real all-MiniLM-L6-v2 (from $IMS_MINILM_DIR), converted; skipped without it."""
    src = os.environ.get("IMS_MINILM_DIR")
    if not src or not os.path.isdir(src):
        pytest.skip("IMS_MINILM_DIR is not set: the real all-MiniLM-L6-v2 was not checked")
    path = work / "minilm.isw"
    imgsearch.convert(src, path)
    return path


@pytest.fixture(scope="session")
def cpu() -> imgsearch.Device:
    with imgsearch.Device("cpu") as d:
        yield d


@pytest.fixture(scope="session")
def image_encoder(iv3, cpu) -> imgsearch.ImageEncoder:
    with imgsearch.ImageEncoder(iv3, device=cpu) as enc:
        yield enc


@pytest.fixture(scope="session")
def text_encoder(tiny_bert, cpu) -> imgsearch.TextEncoder:
    with imgsearch.TextEncoder(tiny_bert, device=cpu) as te:
        yield te


@pytest.fixture(scope="session")
def good_images():
    return [str(IMAGES / n) for n in GOOD_IMAGES]


@pytest.fixture(scope="session")
def photos(work) -> Path:
    """A folder of the good images, a bad one and a non-image, for indexing."""
    d = work / "photos"
    (d / "nested").mkdir(parents=True)
    for n in GOOD_IMAGES[:2]:
        (d / n).write_bytes((IMAGES / n).read_bytes())
    (d / "nested" / GOOD_IMAGES[2]).write_bytes((IMAGES / GOOD_IMAGES[2]).read_bytes())
    (d / "broken.png").write_bytes((IMAGES / "bad_truncated.png").read_bytes())
    (d / "notes.txt").write_text("not an image\n")
    return d


def golden_images(n: int) -> np.ndarray:
    """The first n of the torchvision goldens' 8 images (tests/fixtures/inception_golden/make_golden.py):
    byte = floor(u_i * 256), u_i from splitmix64 seeded with FNV-1a 64 of "images"."""
    m64 = (1 << 64) - 1
    h = 0xCBF29CE484222325
    for b in b"images":
        h = ((h ^ b) * 0x100000001B3) & m64
    count = n * 299 * 299 * 3
    with np.errstate(over="ignore"):
        z = np.uint64(h) + np.arange(1, count + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return np.floor(u * 256.0).astype(np.uint8).reshape(n, 299, 299, 3)


def rss_mib() -> float:
    """This process's resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def under_asan() -> bool:
    return "asan" in os.environ.get("LD_PRELOAD", "")
