"""TextEncoder against `imgsearch embed-text` and `imgsearch tokenize` (bit for
bit), and with the real all-MiniLM-L6-v2 against Hugging Face's tokenizer
ids and sentence-transformers' embeddings (tests/fixtures/minilm_golden, the
references of the C tests)."""
import numpy as np
import pytest

import imgsearch

from conftest import FIXTURES

TEXTS = ["a horse in a field", "zebra", "", "café au lait", "the cat sat on the mat. " * 5]


def test_embed_as_the_command(cli, tiny_bert, text_encoder, work):
    out = work / "cli_text.npy"
    cli("embed-text", "--text-model", tiny_bert, "-o", out, "--device", "cpu",
        input="\n".join(TEXTS).encode() + b"\n")
    ref = np.load(out)
    got = text_encoder.embed(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), text_encoder.dim) == ref.shape
    assert np.array_equal(got, ref)
    # one text: 1-D; alone or among others the same but for BLAS's choice of kernel by shape (as the C tests)
    assert np.abs(text_encoder.embed("zebra") - ref[1]).max() <= 1e-6
    assert np.array_equal(text_encoder.embed([t.encode() for t in TEXTS]), ref)  # bytes are UTF-8
    assert text_encoder.embed([]).shape == (0, text_encoder.dim)


def test_tokenize_as_the_command(cli, tiny_bert, text_encoder):
    lines = ["the cat sat on the mat. the cat sat on the mat. the cat sat on the mat.", "", "a horse", "zebra"]
    ref = [[int(x) for x in line.split()]
           for line in cli("tokenize", "--text-model", tiny_bert, input="\n".join(lines).encode() + b"\n")
           .stdout.decode().splitlines()]
    batch = text_encoder.tokenize(lines)
    assert batch.ids.dtype == np.int32 and batch.ids.shape == (4, max(map(len, ref)))
    for i, r in enumerate(ref):
        assert batch.ids[i, :batch.lengths[i]].tolist() == r
        assert (batch.ids[i, batch.lengths[i]:] == 0).all()  # [PAD]
        assert text_encoder.tokenize(lines[i]).tolist() == r
    assert text_encoder.tokenize(lines[0], max_len=4).tolist() == ref[0][:3] + [ref[0][-1]]
    tokens = cli("tokenize", "--text-model", tiny_bert, "--tokens", input=b"a horse\n").stdout.decode().split()
    assert text_encoder.token_strings(text_encoder.tokenize("a horse")) == tokens


def test_minilm_against_sentence_transformers(cli, minilm, work):
    """The real model: ids as Hugging Face's tokenizers, embeddings within
    cosine 0.99999 of sentence-transformers' own (the C tests' bound), and
    the command's embeddings bit for bit."""
    g = FIXTURES / "minilm_golden"
    n = 80  # of the 239 sentences (the C tests run them all): enough for the binding, quick on a CPU
    sentences = (g / "sentences.txt").read_text(encoding="utf-8").splitlines()[:n]
    ids = [[int(x) for x in line.split()] for line in (g / "ids.txt").read_text().splitlines()[:n]]
    with imgsearch.TextEncoder(minilm, device="cpu") as te:
        assert te.dim == 384
        batch = te.tokenize(sentences)
        for i, r in enumerate(ids):
            assert batch.ids[i, :batch.lengths[i]].tolist() == r, sentences[i]
        e = te.embed(sentences)
    ref = np.fromfile(g / "expected.f32", "<f4").reshape(239, -1)[:n].astype(np.float64)
    cos = (e * ref).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99999, (cos.argmin(), cos.min())
    out = work / "cli_minilm.npy"
    cli("embed-text", "--text-model", minilm, "-o", out, "--device", "cpu",
        input="".join(s + "\n" for s in sentences).encode())
    assert np.array_equal(np.load(out), e)


def test_text_arguments(text_encoder):
    with pytest.raises(imgsearch.ArgumentError, match="NUL"):
        text_encoder.embed(["a\0b"])
    assert text_encoder.tokenize("a\0b").tolist() == text_encoder.tokenize("ab").tolist()  # lengths are passed
    with pytest.raises(imgsearch.ArgumentError):
        text_encoder.embed([1, 2])
    with pytest.raises(imgsearch.ArgumentError):
        text_encoder.embed(["\udcff"])  # a lone surrogate is not UTF-8
    with pytest.raises(TypeError):
        text_encoder.embed(None)
    with pytest.raises(ValueError):
        text_encoder.tokenize("x", max_len=1)
    with pytest.raises(imgsearch.ArgumentError):
        text_encoder.token_strings([10**6])
