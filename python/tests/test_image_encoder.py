"""ImageEncoder against `imgsearch embed-image` / `classify` (bit for bit: the
same library, both on the CPU) and against torchvision (float64 goldens of
the same synthetic weights); decoded arrays against files; failures."""
import json

import numpy as np
import pytest

import imgsearch

from conftest import FIXTURES, IMAGES, golden_images


@pytest.fixture(scope="module")
def both(image_encoder, good_images):
    """Features and logits of the good images, from files."""
    return image_encoder.embed(good_images, what="both", threads=2)


def test_attributes(image_encoder):
    assert image_encoder.feature_dim == 2048 and image_encoder.num_classes == 1000
    assert image_encoder.mode == "torchvision" and image_encoder.synthetic
    assert image_encoder.labels[207] == "golden retriever" and len(image_encoder.labels) == 1000
    assert "2048 features" in repr(image_encoder)


@pytest.mark.parametrize("what", ["features", "logits"])
def test_embed_files_as_the_command(cli, iv3, image_encoder, good_images, both, work, what):
    out = work / f"cli_{what}.npy"
    cli("embed-image", *good_images, "--image-model", iv3, "-o", out, "--what", what, "--device", "cpu")
    ref = np.load(out)
    got = both[0] if what == "features" else both[1]
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.array_equal(got, ref)  # bit for bit
    assert np.array_equal(image_encoder.embed(good_images[0], what=what), ref[0])  # one path: 1-D


def test_arrays_as_files(image_encoder, good_images, both):
    """Decoded images (H, W, 3) uint8 go through the same preprocessing as files."""
    arrays = [imgsearch.decode_image(p) for p in good_images]
    feats, logits = image_encoder.embed(arrays, what="both")
    assert np.array_equal(feats, both[0]) and np.array_equal(logits, both[1])
    one = image_encoder.embed(arrays[1])
    assert one.shape == (2048,) and np.array_equal(one, both[0][1])


def test_decode_image_matches_pillow(good_images):
    Image = pytest.importorskip("PIL.Image")
    for p in good_images:
        a = imgsearch.decode_image(p)
        with Image.open(p) as im:
            ref = np.asarray(im.convert("RGB"))
        assert a.dtype == np.uint8 and a.shape == ref.shape and np.array_equal(a, ref), p
        assert np.array_equal(imgsearch.decode_image(open(p, "rb").read()), a)


def test_forward_against_torchvision(image_encoder):
    """The network's input as given: the goldens' images through the synthetic
    weights, against torchvision run in float64 (relative error <= 1e-4, as
    tests/unit/test_inception.c: fp32 through 94 layers)."""
    images = golden_images(2)
    feats, logits = image_encoder.forward(images, what="both")
    g = FIXTURES / "inception_golden"
    gf = np.fromfile(g / "features_tv.f32", "<f4").reshape(8, 2048)[:2]
    gl = np.fromfile(g / "logits_tv.f32", "<f4").reshape(8, 1000)[:2]
    assert np.abs(feats - gf).max() <= 1e-4 * np.abs(gf).max()
    assert np.abs(logits - gl).max() <= 1e-4 * np.abs(gl).max()
    # batch size does not change an image's result (the CPU runs images one by one)
    assert np.array_equal(image_encoder.forward(images[1:2]), feats[1:2])


def test_classify_as_the_command(cli, iv3, image_encoder, good_images):
    got = image_encoder.classify(good_images, k=3)
    ref = json.loads(cli("classify", *good_images, "--image-model", iv3, "-k", "3", "--json", "--device", "cpu",
                         "--threads", "2").stdout)
    assert len(got) == len(ref)
    for preds, r in zip(got, ref):
        assert [(p.index, p.label, p.probability) for p in preds] == \
               [(t["class"], t["label"], t["probability"]) for t in r["top"]]  # the same doubles
    assert image_encoder.classify(good_images[0], k=3) == got[0]


def test_run_yields_batches_with_failures(image_encoder, good_images, both):
    paths = [good_images[0], str(IMAGES / "bad_truncated.png"), good_images[1], str(IMAGES / "missing.png")]
    batches = list(image_encoder.run(paths, what="features", batch_size=3, threads=2))
    assert [(b.first, b.count) for b in batches] == [(0, 3), (3, 1)]
    assert batches[0].logits is None
    failures = [f for b in batches for f in b.failures]
    assert [(i, p) for i, p, _ in failures] == [(1, paths[1]), (3, paths[3])]
    assert "truncated" in failures[0][2]
    assert np.array_equal(batches[0].features[0], both[0][0]) and np.array_equal(batches[0].features[2], both[0][1])
    assert np.isnan(batches[0].features[1]).all() and np.isnan(batches[1].features[0]).all()


def test_failed_images_raise_or_give_nan(image_encoder, good_images, both):
    paths = [good_images[0], str(IMAGES / "bad_random.bin")]
    with pytest.raises(imgsearch.ImageError) as e:
        image_encoder.embed(paths)
    assert e.value.code == imgsearch.UnsupportedError.code or e.value.code == imgsearch.FormatError.code
    assert e.value.failures[0][0] == 1 and "bad_random.bin" in str(e.value)
    out = image_encoder.embed(paths, errors="nan")
    assert np.array_equal(out[0], both[0][0]) and np.isnan(out[1]).all()
    assert image_encoder.classify(paths, errors="nan")[1] == []


def test_fid_mode_files_and_arrays_agree(image_encoder, good_images):
    """mode="fid" preprocessing (bilinear 299 x 299, 2x - 1) on a file and on its decoded array."""
    f = image_encoder.embed(good_images[0], mode="fid")
    a = image_encoder.embed(imgsearch.decode_image(good_images[0]), mode="fid")
    assert np.array_equal(f, a)


def test_empty_inputs(image_encoder):
    assert image_encoder.embed([]).shape == (0, 2048)
    assert image_encoder.forward(np.zeros((0, 299, 299, 3), np.uint8)).shape == (0, 2048)
