"""fid_data.py: the images and the full-size FID Inception weights that the
fid tests and the golden script (tests/fixtures/fid_golden/make_golden.py)
share, so both sides see the same bytes. numpy only: CI runs it without torch.

Images come from the sample photos as torchvision mode crops them (299 x 299,
`imgsearch preprocess --uint8` here, Pillow + torchvision in the golden
script: byte-identical, which the golden's photo CRC checks):
  make_folders         A and B, 50 PNGs each: random square crops of 150..299
                       pixels (B's with Gaussian noise, sigma 24)
  make_square_folders  A299 and B299, 30 PNGs each, 299 x 299 (every tool's
                       resize is then the identity: torch-fidelity's own
                       TF1-style bilinear included): flips and mild noise for
                       A299, more noise and a colour cast for B299

Weights: pytorch-fid's FID Inception at full size (its state_dict's names and
shapes, from layers.txt), every value from the synthetic generator of
weights_tools/synthetic.c (splitmix64 from FNV-1a of the name, u in [0, 1),
lo + (hi - lo) u), except the batch-norm running statistics, which the golden
script calibrated on A and B (bn_stats.npz): with the generator's statistics
the features collapse to nearly a constant and FID means nothing.
"""
import json
import struct
import zlib
from pathlib import Path

import numpy as np

FOLDER_IMAGES = 50
SQUARE_IMAGES = 30
FC_RANGE = 0.25  # fc.weight in +-0.25: logits spread enough for an Inception Score well above 1


def write_png(path, a):
    """(h, w, 3) uint8 as an 8-bit RGB PNG."""
    h, w, _ = a.shape
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    head = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(raw, 1)) +
                           chunk(b"IEND", b""))


def make_folders(work, photos):
    """A and B under work; returns {name: [(file name, pixels)]}."""
    rng = np.random.default_rng(18)
    made = {}
    for name, noise in (("A", 0.0), ("B", 24.0)):
        d = Path(work) / name
        d.mkdir()
        made[name] = []
        for i in range(FOLDER_IMAGES):
            src = photos[(i * 7 + (name == "B")) % len(photos)]
            s = int(rng.integers(150, 300))
            y, x = (int(rng.integers(0, 300 - s)) for _ in range(2))
            crop = src[y:y + s, x:x + s].astype(np.float64)
            crop += rng.normal(0, noise, crop.shape) if noise else 0
            px = np.clip(crop, 0, 255).astype(np.uint8)
            fn = "%s%02d.png" % (name.lower(), i)
            write_png(d / fn, px)
            made[name].append((fn, px))
    return made


def make_square_folders(work, photos):
    """A299 and B299 under work; returns {name: [(file name, pixels)]}."""
    rng = np.random.default_rng(299)
    made = {}
    for name in ("A299", "B299"):
        d = Path(work) / name
        d.mkdir()
        made[name] = []
        for i in range(SQUARE_IMAGES):
            img = photos[(i * 5 + (name == "B299") * 3) % len(photos)].astype(np.float64)
            if rng.integers(0, 2):
                img = img[:, ::-1]
            if name == "A299":
                img = img + rng.normal(0, 4, img.shape)
            else:
                img = img * np.array([1.0, 0.9, 0.8]) + rng.normal(0, 16, img.shape)
            px = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))
            fn = "%s_%02d.png" % (name.lower(), i)
            write_png(d / fn, px)
            made[name].append((fn, px))
    return made


def pixels_crc(made):
    """One CRC-32 over every folder's pixels, in name order."""
    crc = 0
    for name in sorted(made):
        for fn, px in made[name]:
            crc = zlib.crc32(fn.encode() + px.tobytes(), crc)
    return "%08x" % crc


# ---- weights ------------------------------------------------------------------------------

M64 = (1 << 64) - 1


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def uniform(name, n):
    """synthetic.c's u_1..u_n for this name: (splitmix64 >> 11) / 2^53, float64."""
    with np.errstate(over="ignore"):
        k = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(fnv1a64(name)) + k * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def value_range(name, shape):
    if name.endswith("conv.weight"):
        hi = float(np.sqrt(6.0 / (shape[1] * shape[2] * shape[3])))
        return -hi, hi
    if name.endswith("bn.weight"):
        return 0.5, 1.5
    if name.endswith("bn.bias"):
        return -0.25, 0.25
    if name == "fc.weight":
        return -FC_RANGE, FC_RANGE
    if name == "fc.bias":
        return -0.1, 0.1
    raise ValueError("no range for " + name)


def read_layers(path):
    """layers.txt: one 'name d0 d1 ...' line per tensor of the state_dict."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith("#"):
            name, *dims = line.split()
            out.append((name, tuple(int(d) for d in dims)))
    return out


def fid_state_dict(layers, bn_stats):
    """name -> float32 array: the generator's values, the calibrated BN statistics."""
    sd = {}
    for name, shape in layers:
        if name.endswith("num_batches_tracked"):
            continue
        if name.endswith("running_mean") or name.endswith("running_var"):
            sd[name] = np.asarray(bn_stats[name], dtype=np.float32).reshape(shape)
            continue
        lo, hi = value_range(name, shape)
        n = int(np.prod(shape))
        sd[name] = (lo + (hi - lo) * uniform(name, n)).astype(np.float32).reshape(shape)
    return sd


def write_safetensors(path, tensors):
    """A safetensors file of float32 tensors (the header, then the bytes in order)."""
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
