"""FID, KID and IS from Python (imgsearch._fid over engine/models/fid_*.c):
against float64 numpy/scipy references written from the published
formulas (pytorch-fid's calculate_frechet_distance, torch-fidelity's KID
estimator and subsets, its Inception Score), the command's own result on the
same statistics files, and files written by numpy as pytorch-fid writes them."""
import json

import numpy as np
import pytest

import imgsearch


def features(n, dim, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((dim, dim)) / np.sqrt(dim)  # correlated columns: a full covariance
    return (rng.standard_normal((n, dim)) @ mix + shift).astype(np.float32)


def frechet_reference(mu1, s1, mu2, s2):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    covmean = scipy_linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def test_statistics_stream_as_numpy():
    x = features(300, 16, 1, shift=100.0)  # a large mean over a small spread: the sums must not lose it
    s = imgsearch.FidStats(16)
    for part in (x[:1], x[1:7], x[7:200], x[200:]):
        s.add(np.ascontiguousarray(part))
    mu, sigma = s.moments()
    assert s.count == 300 and s.dim == 16
    x64 = x.astype(np.float64)
    assert np.allclose(mu, x64.mean(0), rtol=1e-13, atol=0)
    assert np.allclose(sigma, np.cov(x64, rowvar=False), rtol=1e-9, atol=1e-12)


def test_fid_against_the_formula_and_itself():
    a, b = features(400, 32, 2), features(300, 32, 3, shift=0.3)
    got = imgsearch.fid(a, b)
    ref = frechet_reference(a.astype(np.float64).mean(0), np.cov(a.astype(np.float64), rowvar=False),
                            b.astype(np.float64).mean(0), np.cov(b.astype(np.float64), rowvar=False))
    assert got > 1 and abs(got - ref) <= 1e-9 * ref, (got, ref)
    with imgsearch.FidStats.from_features(a) as sa:
        assert abs(imgsearch.fid(sa, sa)) < 1e-9
        assert imgsearch.fid(sa, b) == got


def test_npz_files_both_ways(tmp_path, cli):
    a, b = features(200, 24, 4), features(250, 24, 5, shift=0.5)
    sa, sb = imgsearch.FidStats.from_features(a), imgsearch.FidStats.from_features(b)
    sa.save(tmp_path / "a.npz", mode="fid")
    got = np.load(tmp_path / "a.npz")
    mu, sigma = sa.moments()
    assert got["mu"].dtype == np.float64 and np.array_equal(got["mu"], mu) and np.array_equal(got["sigma"], sigma)
    # pytorch-fid writes float32 mu and float64 sigma with np.savez: read as they are
    np.savez(tmp_path / "b.npz", mu=sb.moments()[0].astype(np.float32), sigma=sb.moments()[1])
    la, lb = imgsearch.FidStats.load(tmp_path / "a.npz"), imgsearch.FidStats.load(tmp_path / "b.npz")
    assert la.mode == "fid" and la.count == 200 and lb.mode == "" and lb.count == 0
    want = imgsearch.fid(la, lb)
    assert imgsearch.fid(tmp_path / "a.npz", str(tmp_path / "b.npz")) == want
    # the command on the same files: the same library, the same bits (it warns that b has no mode)
    p = cli("fid", tmp_path / "a.npz", tmp_path / "b.npz", "--json", "--force")
    assert json.loads(p.stdout)["fid"] == want


def kid_reference(x, y, subsets, size, seed):
    """torch-fidelity's kid: RandomState(seed).choice without replacement, x then y, per subset."""
    rng = np.random.RandomState(seed)
    x, y = x.astype(np.float64), y.astype(np.float64)
    d = x.shape[1]
    out = []
    for _ in range(subsets):
        fx = x[rng.choice(len(x), size, replace=False)]
        fy = y[rng.choice(len(y), size, replace=False)]
        kxx, kyy, kxy = [(p @ q.T / d + 1) ** 3 for p, q in ((fx, fx), (fy, fy), (fx, fy))]
        m = size
        out.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                   - 2 * kxy.mean())
    return float(np.mean(out)), float(np.std(out))


def test_kid_draws_torch_fidelitys_subsets():
    x, y = features(60, 8, 6), features(50, 8, 7, shift=0.2)
    mean, std = imgsearch.kid(x, y, subsets=7, subset_size=20, seed=11)
    ref_mean, ref_std = kid_reference(x, y, 7, 20, 11)
    assert abs(mean - ref_mean) <= 1e-10 * abs(ref_mean) and abs(std - ref_std) <= 1e-9 * ref_std
    assert imgsearch.kid(x, y, subsets=7, subset_size=1000, seed=11)[0] == \
        imgsearch.kid(x, y, subsets=7, subset_size=50, seed=11)[0]  # capped at the smaller set


def test_inception_score_as_torch_fidelity():
    rng = np.random.default_rng(8)
    logits = (rng.standard_normal((97, 10)) * 3).astype(np.float32)
    mean, std = imgsearch.inception_score(logits, splits=4, seed=5)
    p = logits.astype(np.float64)[np.random.RandomState(5).permutation(97)]
    p = np.exp(p - p.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = []
    for k in range(4):
        part = p[k * 97 // 4:(k + 1) * 97 // 4]
        kl = part * (np.log(part) - np.log(part.mean(0, keepdims=True)))
        scores.append(np.exp(kl.sum(1).mean()))
    assert abs(mean - np.mean(scores)) <= 1e-10 * mean and abs(std - np.std(scores)) <= 1e-8 * max(std, 1e-12)


def test_fid_bad_arguments(tmp_path):
    with pytest.raises(imgsearch.ArgumentError):
        imgsearch.fid(np.ones((5, 4), np.float64), np.ones((5, 4), np.float32))
    with pytest.raises(imgsearch.ArgumentError):
        imgsearch.fid([[1.0]], np.ones((5, 4), np.float32))
    with pytest.raises(imgsearch.Error):  # one row: no covariance
        imgsearch.fid(np.ones((1, 4), np.float32), features(10, 4, 9))
    with pytest.raises(imgsearch.Error):  # dimensions differ
        imgsearch.fid(features(10, 4, 9), features(10, 5, 9))
    with pytest.raises(imgsearch.FileError):
        imgsearch.FidStats.load(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(imgsearch.FormatError):
        imgsearch.FidStats.load(tmp_path / "junk.npz")
    s = imgsearch.FidStats(4)
    with pytest.raises(imgsearch.ArgumentError):
        s.add(np.ones((3, 5), np.float32))
    s.close()
    with pytest.raises(imgsearch.ClosedError):
        s.add(np.ones((3, 4), np.float32))
