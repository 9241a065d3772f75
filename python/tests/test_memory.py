"""Memory: repeated calls keep the process's resident set flat (every buffer
the library returns is freed, every array the binding makes is released)."""
import gc

import numpy as np
import pytest

import imgsearch

from conftest import rss_mib, under_asan

pytestmark = pytest.mark.skipif(under_asan(), reason="RSS is not meaningful under ASan")


def test_embedding_10000_texts_100_times_keeps_rss_flat(text_encoder):
    texts = [f"a horse {i} in a field" for i in range(10_000)]
    for _ in range(5):  # warm up: allocator pools, the encoder's buffers at their largest
        text_encoder.embed(texts)
    gc.collect()
    start = rss_mib()
    samples = []
    for i in range(100):
        e = text_encoder.embed(texts)
        assert e.shape == (10_000, text_encoder.dim)
        if i % 10 == 9:
            samples.append(rss_mib())
    grew = max(samples) - start
    print(f"RSS over 100 calls of 10,000 texts: start {start:.1f} MiB, samples {[round(s, 1) for s in samples]}")
    # one call's arrays are ~0.3 MiB of output and a few MiB of token ids: a leak of even 1 KiB per text
    # (10 MiB per call) would pass 1 GiB; allocator noise stays within a few MiB
    assert grew < 16, samples


def test_repeated_searches_keep_rss_flat(cpu):
    rng = np.random.default_rng(1)
    with imgsearch.Table(rng.standard_normal((5_000, 64)).astype(np.float32), device=cpu) as t:
        q = rng.standard_normal((32, 64)).astype(np.float32)
        for _ in range(10):
            t.search(q, 100)
        gc.collect()
        start = rss_mib()
        for _ in range(200):  # 200 x 38 KiB of results: a leak of them would pass 7 MiB
            t.search(q, 100)
        assert rss_mib() - start < 4
