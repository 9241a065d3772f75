"""Bad inputs are Python exceptions, never a crash (the suite runs under
faulthandler, and once under AddressSanitizer: `make test-python-asan`):
wrong dtypes, shapes and layouts raise before any C call; missing and hostile
files raise the library's error with its code and message; closed objects
raise ClosedError; objects free their C resources on close, at the end of a
`with`, when collected, and before the device they run on."""
import gc
import os
import random
import threading
import time

import numpy as np
import pytest

import imgsearch
from imgsearch import _ffi

from conftest import FIXTURES, IMAGES, rss_mib, under_asan


# ---- arguments, refused before C --------------------------------------------------------


@pytest.mark.parametrize("table,queries,k,match", [
    (np.zeros((5, 4), np.float64), np.ones((1, 4), np.float32), 1, "dtype float64"),
    (np.ones((5, 4), np.float32), np.ones((1, 4), np.float16), 1, "queries has dtype float16"),
    (np.ones((5, 4), np.float32)[:, ::2], np.ones((1, 2), np.float32), 1, "C-contiguous"),
    (np.ones((5, 4), np.float32), np.ones((4, 1), np.float32).T.copy(order="F")[:, :3], 1, "columns"),
    (np.ones((5, 4), np.float32), np.asfortranarray(np.ones((3, 4), np.float32)), 1, "C-contiguous"),
    (np.ones((5, 4), np.float32), np.ones((1, 5), np.float32), 1, "5 columns; expected 4"),
    (np.ones((5, 4, 1), np.float32), np.ones((1, 4), np.float32), 1, "shape"),
    (np.ones((5, 4), np.float32), np.ones((1, 4), np.float32), 0, "k = 0"),
    (np.ones((5, 4), np.float32), np.ones((1, 4), np.float32), 16385, "k = 16385"),
    (np.ones((5, 4), np.float32), np.ones((1, 4), np.float32), 2.0, "k must be an int"),
    ([[1.0, 2.0]], np.ones((1, 2), np.float32), 1, "numpy array"),
    (np.ones((5, 4), ">f4"), np.ones((1, 4), np.float32), 1, "dtype"),
])
def test_knn_arguments(cpu, table, queries, k, match):
    with pytest.raises(imgsearch.ArgumentError, match=match) as e:
        imgsearch.knn(table, queries, k, device=cpu)
    assert isinstance(e.value, ValueError) and isinstance(e.value, TypeError) and e.value.code == 1


def test_misaligned_array_refused(cpu):
    buf = np.zeros(4 * 4 * 4 + 1, np.uint8)
    a = buf[1:].view(np.float32).reshape(4, 4)
    assert not a.flags.aligned
    with pytest.raises(imgsearch.ArgumentError, match="aligned"):
        imgsearch.knn(a, np.ones((1, 4), np.float32), 1, device=cpu)


def test_device_and_option_arguments(tiny_bert, iv3):
    for bad in ("gpu", "cuda:x", "cpu:1", 3):
        with pytest.raises(imgsearch.ArgumentError):
            imgsearch.Device(bad)
    with pytest.raises(imgsearch.ArgumentError):
        imgsearch.TextEncoder(tiny_bert, device="cpu", precision="fp64")
    with pytest.raises(imgsearch.UnsupportedError, match="fp32 only"):  # the library's refusal, with its message
        imgsearch.ImageEncoder(iv3, device="cpu", precision="fp16")
    with pytest.raises(imgsearch.ArgumentError):
        imgsearch.Table(4, metric="l2", device="cpu")
    with pytest.raises(imgsearch.ArgumentError):
        imgsearch.Table(0, device="cpu")


def test_cuda_without_a_gpu():
    if imgsearch.cuda_device_count() > 0:
        pytest.skip("a GPU is present")
    with pytest.raises((imgsearch.NoDeviceError, imgsearch.UnsupportedError, imgsearch.CudaError)) as e:
        imgsearch.Device("cuda")
    assert e.value.message and e.value.status in ("no device", "unsupported", "cuda error")
    assert imgsearch.Device("auto").kind == "cpu"


def test_image_arguments(image_encoder):
    for bad in (np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32),
                np.zeros((10, 10, 3), np.uint8)[:, ::2], [np.zeros((5, 5, 3), np.uint8), "a.jpg"], 42,
                np.zeros((0, 10, 3), np.uint8)):
        with pytest.raises(imgsearch.ArgumentError):
            image_encoder.embed(bad)
    with pytest.raises(imgsearch.ArgumentError):
        image_encoder.forward(np.zeros((1, 224, 224, 3), np.uint8))
    with pytest.raises(imgsearch.ArgumentError):
        image_encoder.embed(str(IMAGES / "horse.png"), what="pixels")
    with pytest.raises(imgsearch.ArgumentError):
        image_encoder.embed(str(IMAGES / "horse.png"), mode="imagenet")
    with pytest.raises(imgsearch.ArgumentError, match="NUL"):
        image_encoder.embed("a\0b.jpg")
    with pytest.raises(imgsearch.ArgumentError):
        image_encoder.classify(str(IMAGES / "horse.png"), k=0)


def test_tiny_images_are_fine(image_encoder):
    """A 1 x 1 image is a valid input (upscaled and cropped as Pillow does)."""
    assert np.isfinite(image_encoder.embed(np.full((1, 1, 3), 200, np.uint8))).all()


# ---- files -----------------------------------------------------------------------------


def test_missing_files(work):
    with pytest.raises(imgsearch.FileError) as e:
        imgsearch.TextEncoder(work / "absent.isw", device="cpu")
    assert e.value.code == _ffi.IMS_ERR_IO == 2 and e.value.status == "i/o error"
    assert "absent.isw" in str(e.value) and isinstance(e.value, OSError)
    with pytest.raises(imgsearch.FileError):
        imgsearch.ImageEncoder(work / "absent.isw", device="cpu")
    with pytest.raises(imgsearch.FileError):
        imgsearch.decode_image(work / "absent.png")


def hostile_weight_files(tiny_bert, work):
    good = open(tiny_bert, "rb").read()
    rng = random.Random(1)
    files = {"empty": b"", "garbage": bytes(rng.randrange(256) for _ in range(4096)),
             "truncated": good[:len(good) // 2], "header only": good[:64]}
    for i in range(12):  # one flipped byte anywhere: header, metadata, directory or data
        b = bytearray(good)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        files[f"flip {i}"] = bytes(b)
    for seed in sorted((FIXTURES.parent / "fuzz" / "seeds" / "weights_reader").iterdir()):
        files[f"seed {seed.name}"] = seed.read_bytes()
    out = {}
    for name, data in files.items():
        p = work / f"hostile_{name.replace(' ', '_')}.isw"
        p.write_bytes(data)
        out[name] = p
    return out


def test_hostile_weight_files(tiny_bert, work, cpu):
    """Every malformed file is an imgsearch.Error (or, for a flipped data bit, a model that runs)."""
    for name, path in hostile_weight_files(tiny_bert, work).items():
        for make in (lambda: imgsearch.TextEncoder(path, device=cpu), lambda: imgsearch.ImageEncoder(path, device=cpu)):
            try:
                with make() as m:
                    if isinstance(m, imgsearch.TextEncoder):
                        m.embed(["a horse", "zebra"])
                        m.tokenize("a horse")
            except imgsearch.Error as e:
                assert e.message and "\n" not in e.message, (name, e)


def test_wrong_kind_of_model(iv3, tiny_bert, cpu):
    with pytest.raises(imgsearch.Error):
        imgsearch.TextEncoder(iv3, device=cpu)
    with pytest.raises(imgsearch.Error):
        imgsearch.ImageEncoder(tiny_bert, device=cpu)


def test_hostile_images(image_encoder):
    bad = sorted(IMAGES.glob("bad_*"))  # (bad.gif, bad.bmp and bad.webp are formats the decoder now reads)
    for p in bad:
        with pytest.raises(imgsearch.Error):
            imgsearch.decode_image(p)
        with pytest.raises(imgsearch.Error):
            imgsearch.decode_image(p.read_bytes())
    # through the batch loop (each failed image still runs the model on zeros: a few suffice)
    with pytest.raises(imgsearch.ImageError) as e:
        image_encoder.embed([str(p) for p in bad[:4]], batch_size=4)
    assert [i for i, _, _ in e.value.failures] == [0, 1, 2, 3]
    with pytest.raises(imgsearch.FormatError):
        imgsearch.decode_image(b"\xff\xd8\xff" + b"\0" * 100)
    with pytest.raises(imgsearch.Error):
        imgsearch.decode_image(bytes(range(256)) * 3)
    with pytest.raises(imgsearch.Error):
        imgsearch.decode_image(str(IMAGES / "horse.png"), max_pixels=100)


def test_hostile_index_folders(work):
    """Broken manifests and chunk files: errors, not crashes."""
    d = work / "hostile.idx"
    d.mkdir()
    for manifest in ("", "{", '{"format": "imgsearch-index", "version": 99}', "[]", '{"format": 1}',
                     open(FIXTURES.parent / "fuzz" / "seeds" / "index" / "two_rows.txt").read()):
        (d / "manifest.json").write_text(manifest)
        with pytest.raises(imgsearch.Error):
            imgsearch.Index(d, device="cpu")


# ---- lifetimes ---------------------------------------------------------------------------


def test_closed_objects(tiny_bert, iv3):
    te = imgsearch.TextEncoder(tiny_bert, device="cpu")
    te.close()
    te.close()  # idempotent
    assert te.closed
    for call in (lambda: te.embed(["x"]), lambda: te.tokenize("x"), lambda: te.token_strings([1])):
        with pytest.raises(imgsearch.ClosedError):
            call()
    with imgsearch.Table(4, device="cpu") as t:
        pass
    with pytest.raises(imgsearch.ClosedError):
        len(t)
    with pytest.raises(imgsearch.ClosedError):
        t.add(np.ones((1, 4), np.float32))
    assert "closed" in repr(t) and "closed" in repr(te)


def test_device_closes_what_runs_on_it(tiny_bert, iv3):
    """Closing a shared Device first closes the objects made on it (no use after free)."""
    d = imgsearch.Device("cpu")
    te = imgsearch.TextEncoder(tiny_bert, device=d)
    t = imgsearch.Table(4, device=d)
    enc = imgsearch.ImageEncoder(iv3, device=d)
    run = enc.run([str(IMAGES / "horse.png")] * 3, batch_size=1, threads=1)
    next(run)
    d.close()
    assert te.closed and t.closed and enc.closed and run.closed and d.closed
    with pytest.raises(imgsearch.ClosedError):
        te.embed(["x"])
    with pytest.raises(imgsearch.ClosedError):
        next(run)
    with pytest.raises(imgsearch.ClosedError):
        imgsearch.Table(4, device=d)


def test_encoder_closes_its_runs(iv3):
    with imgsearch.ImageEncoder(iv3, device="cpu") as enc:
        run = enc.run([str(IMAGES / "horse.png")] * 4, batch_size=1, threads=2)
        assert next(run).count == 1
    assert run.closed  # the decode threads stopped with the encoder
    with pytest.raises(imgsearch.ClosedError):
        next(run)


def test_abandoned_run_is_freed(image_encoder):
    run = image_encoder.run([str(IMAGES / "horse.png")] * 4, batch_size=1, threads=2)
    next(run)
    del run
    gc.collect()
    assert len(image_encoder._children) == 0


def test_garbage_collection_frees(tiny_bert):
    """Objects dropped without close() are freed when collected: RSS stays flat."""
    if under_asan():
        pytest.skip("RSS is not meaningful under ASan")
    for _ in range(20):
        imgsearch.TextEncoder(tiny_bert, device="cpu").embed(["warm up"])
    gc.collect()
    before = rss_mib()
    for _ in range(100):  # a leaked backend, encoder or 256 KiB table each time would pass 20 MiB
        te = imgsearch.TextEncoder(tiny_bert, device="cpu")
        te.embed(["a horse"])
        t = imgsearch.Table(np.ones((1000, 64), np.float32), device="cpu")
        t.search(np.ones((1, 64), np.float32), 3)
    del te, t
    gc.collect()
    assert rss_mib() - before < 20, (before, rss_mib())


# ---- threads -----------------------------------------------------------------------------


def test_gil_is_released(cpu):
    """A long search in one thread leaves the interpreter to the others."""
    rng = np.random.default_rng(0)
    table = imgsearch.Table(rng.standard_normal((200_000, 128)).astype(np.float32), device=cpu)
    q = rng.standard_normal((64, 128)).astype(np.float32)
    ticks = []
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)
    t = threading.Thread(target=count)
    t.start()
    start = time.perf_counter()
    for _ in range(3):
        table.search(q, 10)
    elapsed = time.perf_counter() - start
    done.set()
    t.join()
    table.close()
    during = [x for x in ticks if start <= x <= start + elapsed]
    assert elapsed > 0.05 and len(during) >= 5, (elapsed, len(during))


def test_threads_share_an_encoder(text_encoder):
    """Calls from several threads on one object are serialized: each gets its own right answer."""
    texts = [f"text number {i}" for i in range(50)]
    ref = {i: text_encoder.embed(texts[i::4]) for i in range(4)}
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(20):
                results[i] = text_encoder.embed(texts[i::4])
        except Exception as e:  # pragma: no cover
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        assert np.array_equal(results[i], ref[i])


def test_error_carries_code_and_message():
    e = imgsearch._errors.error(_ffi.IMS_ERR_CHECKSUM, "crc mismatch")
    assert isinstance(e, imgsearch.ChecksumError) and isinstance(e, imgsearch.FormatError)
    assert e.code == 4 and e.status == "checksum mismatch" and e.message == str(e) == "crc mismatch"
