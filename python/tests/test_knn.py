"""knn() and Table against `imgsearch knn` (bit for bit), the fixtures' exact
expectations (tests/fixtures/knn), a float64 numpy brute force, and FAISS
(faiss-cpu's IndexFlatIP) where it is installed."""
import json

import numpy as np
import pytest

import imgsearch

from conftest import FIXTURES

KNN = FIXTURES / "knn"


def load(name):
    return np.load(KNN / f"{name}.npy")


def expected(k):
    return [json.loads(line) for line in open(KNN / f"expected_ip_k{k}.jsonl")]


@pytest.mark.parametrize("table,queries,dtype,chunk_rows", [
    ("table", "queries", "f32", 0), ("table_f16", "queries", "f16", 0), ("table", "queries", "f32", 7),
    ("table_f16", "queries", "f32", 13)])
def test_exact_fixture(cpu, table, queries, dtype, chunk_rows):
    """Integer-valued rows: exact scores, ties by lower row, resident or streamed in chunks."""
    scores, ids = imgsearch.knn(load(table), load(queries), 5, "ip", device=cpu, dtype=dtype, chunk_rows=chunk_rows)
    exp = expected(5)
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and ids.shape == (3, 5)
    assert ids.tolist() == [e["ids"] for e in exp] and scores.tolist() == [e["scores"] for e in exp]


def test_k_beyond_rows(cpu):
    scores, ids = imgsearch.knn(load("table"), load("queries"), 100, "ip", device=cpu)
    exp = expected(100)
    assert ids[:, :50].tolist() == [e["ids"] for e in exp] and (ids[:, 50:] == -1).all()
    assert np.isneginf(scores[:, 50:]).all()


def test_as_the_command(cli, cpu, work):
    """Random data, cosine: the command's .npz and knn() agree bit for bit."""
    rng = np.random.default_rng(7)
    t = rng.standard_normal((3001, 37)).astype(np.float32)
    q = rng.standard_normal((9, 37)).astype(np.float32)
    np.save(work / "rt.npy", t)
    np.save(work / "rq.npy", q)
    for dtype in ("f32", "f16"):
        cli("knn", work / "rt.npy", work / "rq.npy", "-k", 20, "--dtype", dtype, "--device", "cpu",
            "-o", work / "r.npz")
        z = np.load(work / "r.npz")
        scores, ids = imgsearch.knn(t, q, 20, device=cpu, dtype=dtype)
        assert np.array_equal(ids, z["ids"]) and np.array_equal(scores, z["scores"]), dtype


def test_against_brute_force(cpu):
    rng = np.random.default_rng(3)
    t = rng.standard_normal((2000, 64)).astype(np.float32)
    q = rng.standard_normal((5, 64)).astype(np.float32)
    scores, ids = imgsearch.knn(t, q, 10, device=cpu)
    t64 = t.astype(np.float64) / np.linalg.norm(t, axis=1, keepdims=True)
    q64 = q.astype(np.float64) / np.linalg.norm(q, axis=1, keepdims=True)
    s = q64 @ t64.T
    for i in range(len(q)):
        ref = np.sort(s[i])[::-1][:10]
        assert np.abs(scores[i] - ref).max() < 1e-5  # fp32 normalization and dot products of length 64
        assert np.abs(s[i][ids[i]] - scores[i]).max() < 1e-5 and len(set(ids[i].tolist())) == 10


def test_against_faiss(cpu):
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(11)
    t = rng.standard_normal((5000, 48)).astype(np.float32)
    q = rng.standard_normal((16, 48)).astype(np.float32)
    index = faiss.IndexFlatIP(48)
    index.add(t)
    d, i = index.search(q, 25)
    scores, ids = imgsearch.knn(t, q, 25, "ip", device=cpu)
    # scores equal within fp32 summation order; ids may differ only where scores tie within it (FAISS's rule)
    assert np.abs(scores - d).max() <= 1e-4 * np.abs(d).max()
    for r in range(len(q)):
        differ = ids[r] != i[r]
        assert np.abs(scores[r][differ] - d[r][differ]).max(initial=0) <= 1e-4
        assert set(ids[r].tolist()) == set(i[r].tolist()) or differ.sum() <= 2


def test_table_grows_and_searches(cpu):
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.standard_normal((4, 16)).astype(np.float32)
    with imgsearch.Table(16, device=cpu) as t:
        assert len(t) == 0 and t.dim == 16 and t.dtype == "f32"
        t.reserve(300)
        t.add(rows[:100])
        t.add(rows[100:].astype(np.float16).astype(np.float32))
        t.add(rows[0])  # one row (dim,): id 300
        assert len(t) == 301
        s1, i1 = t.search(q, 7)
        s2, i2 = t.search(q[0], 7)  # one query: 1-D
        s0, i0 = t.search(q[:1], 7)
        assert np.array_equal(s2, s0[0]) and np.array_equal(i2, i0[0])
        # a batch of one runs another BLAS kernel (sgemv): the last bits of a score may differ
        assert np.array_equal(i2, i1[0]) and np.abs(s2 - s1[0]).max() <= 1e-6
    ref_rows = np.concatenate([rows[:100], rows[100:].astype(np.float16).astype(np.float32), rows[:1]])
    s3, i3 = imgsearch.knn(ref_rows, q, 7, device=cpu)
    assert np.array_equal(s3, s1) and np.array_equal(i3, i1)
    with pytest.raises(imgsearch.ClosedError):
        t.search(q, 1)


def test_bad_rows_are_errors(cpu):
    with pytest.raises(imgsearch.ArgumentError, match="row 7 is all zeros"):
        imgsearch.knn(load("zero_row"), load("queries"), 3, device=cpu)
    with pytest.raises(imgsearch.ArgumentError, match="NaN|nan"):
        imgsearch.knn(load("nan_row"), load("queries"), 3, device=cpu)
