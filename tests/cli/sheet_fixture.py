"""sheet_fixture.py: what the contact-sheet and serve tests share (stdlib only).

- Fixture: a small index of real photos (data/samples) and names that are
  hard to show (markup characters, quotes, a non-UTF-8 byte), built with the
  full-size synthetic Inception-v3 and the tiny BERT fixture on the CPU.
- Checks: counted passes and failures, closing with "N passed, M failed".
- JPEG and PNG readers just deep enough to check what a page holds.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL: %s %s" % (name, detail), file=sys.stderr)
        return ok

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


# File names a page must escape: markup, quotes, an ampersand, a non-UTF-8 byte.
ODD_NAMES = [b"<script>alert(1)<", b"a&b \"quoted\" 'single'", b"caf\xe9 latin1"]


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def build_index(imgsearch, samples, fixtures, work):
    """An index of 6 sample photos + 3 copies under odd names; returns its path."""
    photos = os.path.join(work, "photos")
    os.makedirs(photos)
    names = sorted(n for n in os.listdir(samples) if n.endswith((".png", ".jpg")))[:6]
    for n in names:
        shutil.copy(os.path.join(samples, n), os.path.join(photos, n))
    for i, odd in enumerate(ODD_NAMES):
        src = os.path.join(samples, names[i])
        shutil.copy(src, os.path.join(photos.encode(), odd + b".png"))
    iv3, text, idx = (os.path.join(work, n) for n in ("iv3.isw", "text.isw", "idx"))
    for cmd in ([imgsearch, "convert", "--synthetic", "-o", iv3],
                [imgsearch, "convert", os.path.join(fixtures, "hf_tiny_bert"), "-o", text],
                [imgsearch, "index", photos, "-o", idx, "--image-model", iv3, "--text-model", text,
                 "--device", "cpu", "--threads", "2"]):
        r = run(cmd)
        if r.returncode != 0:
            sys.exit("setup failed: %s: %s" % (" ".join(cmd), r.stderr.decode(errors="replace")))
    return idx, photos


def jpeg_size(data):
    """(width, height) from a JPEG's SOF marker, or None if it is not a whole JPEG."""
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    i, idat = 8, b""
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        body = data[i + 8:i + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), "unexpected PNG type %d/%d" % (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        i += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ft, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if ft == 1:
                line[x] = (line[x] + a) & 255
            elif ft == 2:
                line[x] = (line[x] + b) & 255
            elif ft == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def find_chromium():
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(chromium, url, out_png, width=1200, height=1400):
    """Renders url headless to out_png; returns (ok, stderr text)."""
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--allow-file-access-from-files", "--window-size=%d,%d" % (width, height),
           "--screenshot=" + out_png, url]
    if os.path.basename(chromium) == "chromium-headless-shell":
        cmd.remove("--headless")
    try:
        r = run(cmd, timeout=60)
    except subprocess.TimeoutExpired:
        return False, "timed out"
    return r.returncode == 0 and os.path.exists(out_png), r.stderr.decode(errors="replace")[-2000:]


def work_dir():
    d = tempfile.mkdtemp(prefix="imgsearch-sheet-")
    return d
