"""The package on a GPU (SKIPPED without one, like the C tests' gpu label):
the same calls on Device("cuda") against the CPU, with the tolerances of
tests/gpu (cuDNN and cuBLAS sum in other orders; fp16 rounds)."""
import numpy as np
import pytest

import imgsearch

from conftest import golden_images

pytestmark = [pytest.mark.skipif(imgsearch.cuda_device_count() == 0, reason="no CUDA device"),
              pytest.mark.filterwarnings("ignore::imgsearch.SyntheticWeightsWarning")]


@pytest.fixture(scope="module")
def gpu():
    with imgsearch.Device("cuda") as d:
        yield d


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("precision,tol", [("fp32", 1e-4), ("tf32", 5e-3), ("fp16", 2e-2)])
def test_image_encoder_on_the_gpu(gpu, iv3, image_encoder, good_images, precision, tol):
    crops = golden_images(2)
    cpu_f, cpu_l = image_encoder.forward(crops, what="both")
    with imgsearch.ImageEncoder(iv3, device=gpu, precision=precision) as enc:
        f, l = enc.forward(crops, what="both")
        assert rel(f, cpu_f) <= tol and rel(l, cpu_l) <= tol
        files = enc.embed(good_images)
    assert rel(files, image_encoder.embed(good_images)) <= tol


def test_text_encoder_on_the_gpu(gpu, tiny_bert, text_encoder):
    texts = ["a horse in a field", "zebra", "café au lait"]
    ref = text_encoder.embed(texts).astype(np.float64)
    for precision, bound in (("fp32", 0.99999), ("fp16", 0.999)):
        with imgsearch.TextEncoder(tiny_bert, device=gpu, precision=precision) as te:
            e = te.embed(texts).astype(np.float64)
        cos = (e * ref).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(ref, axis=1)
        assert cos.min() >= bound, (precision, cos)


@pytest.mark.parametrize("dtype,chunk_rows", [("f32", 0), ("f16", 0), ("f16", 1000)])
def test_knn_on_the_gpu(gpu, cpu, dtype, chunk_rows):
    rng = np.random.default_rng(2)
    t = rng.standard_normal((5000, 96)).astype(np.float32)
    q = rng.standard_normal((40, 96)).astype(np.float32)
    s, i = imgsearch.knn(t, q, 16, device=gpu, dtype=dtype, chunk_rows=chunk_rows)
    cs, ci = imgsearch.knn(t, q, 16, device=cpu, dtype=dtype)
    assert np.abs(s - cs).max() <= 1e-5  # exact over the stored values, fp32 sums in another order
    assert (i == ci).mean() > 0.99  # ids differ only where scores tie within that rounding


def test_index_on_the_gpu(gpu, iv3, tiny_bert, photos, tmp_path):
    report = imgsearch.index(photos, tmp_path / "gpu.idx", image_model=iv3, text_model=tiny_bert, device=gpu)
    assert report.indexed == 3
    with imgsearch.Index(tmp_path / "gpu.idx", device=gpu) as idx:
        assert idx.config["precision"] == "fp16"
        hits = idx.search(image=idx.paths[0], k=3)
        assert hits[0].row == 0 and hits[0].score > 0.99
        assert len(idx.search(text="a horse", k=3)) == 3
