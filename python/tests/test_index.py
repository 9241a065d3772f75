"""index() and Index against `imgsearch index` and `imgsearch search`: the
same index folder byte for byte, the same hits and scores; the tables
memory-mapped as numpy reads them; search checked against a brute force over
the stored rows."""
import filecmp
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import imgsearch

from conftest import GOOD_IMAGES, IMAGES

pytestmark = pytest.mark.filterwarnings("ignore::imgsearch.SyntheticWeightsWarning")


@pytest.fixture(scope="module")
def indexes(cli, iv3, tiny_bert, photos, work):
    """The same folder indexed by Python and by the command (2 rows a chunk: several chunks)."""
    py, cmd = work / "py.idx", work / "cli.idx"
    seen = {"progress": [], "failures": []}
    report = imgsearch.index(photos, py, image_model=iv3, text_model=tiny_bert, device="cpu", chunk_rows=2,
                             batch_size=2, threads=2, progress=lambda p: seen["progress"].append(p),
                             on_failure=lambda path, reason: seen["failures"].append((path, reason)))
    p = cli("index", photos, "-o", cmd, "--image-model", iv3, "--text-model", tiny_bert, "--device", "cpu",
            "--chunk-rows", 2, "--batch", 2, "--threads", 2, ok=(3,))  # 3: an image was skipped
    return py, cmd, report, seen, p


def test_index_writes_what_the_command_writes(indexes):
    py, cmd, report, seen, _ = indexes
    assert report.indexed == 3 and report.failed == 1 and report.ignored == 1 and report.stage == "finished"
    assert seen["progress"][0].stage == "planned" and seen["progress"][-1].stage == "finished"
    assert len(seen["failures"]) == 1 and seen["failures"][0][0].endswith("broken.png")
    names = sorted(os.listdir(cmd))
    assert sorted(os.listdir(py)) == names and "chunk-000001.visual.npy" in names
    # every file byte for byte but the writer's lock (its PID, host, time) and the manifest's commit time
    match, mismatch, errors = filecmp.cmpfiles(py, cmd, [n for n in names if n != "lock"], shallow=False)
    assert errors == [] and mismatch in ([], ["manifest.json"]), mismatch
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (py, cmd)]
    assert manifests[0]["committed"] and all(m.pop("committed") for m in manifests)
    assert manifests[0] == manifests[1]


def test_index_reads_the_folder(indexes, photos):
    py, _, _, _, _ = indexes
    with imgsearch.Index(py, device="cpu") as idx:
        assert len(idx) == 3 and idx.chunk_count == 2
        cfg = idx.config
        assert cfg["visual_dim"] == 2048 and cfg["semantic_dim"] == 8 and cfg["dtype"] == "f16"
        assert cfg["image_model"]["synthetic"] and idx.synthetic and cfg["precision"] == "fp32"
        assert idx.paths == sorted(idx.paths) and idx.path_of(2) == idx.paths[2]
        assert idx.paths[0] == os.path.join(str(photos), "horse.png")
        assert [os.path.basename(p) for p, _ in idx.failures] == ["broken.png"]
        feats = idx.features()
        chunks = idx.features(chunks=True)
        assert len(chunks) == 2 and all(isinstance(c, np.memmap) for c in chunks)
        assert feats.shape == (3, 2048) and feats.dtype == np.float16
        ref = np.concatenate([np.load(os.path.join(py, f"chunk-{c:06d}.visual.npy")) for c in range(2)])
        assert np.array_equal(feats, ref)
        assert idx.semantic().shape == (3, 8)
        with pytest.raises(imgsearch.ArgumentError):
            idx.path_of(3)


def test_search_as_the_command(cli, indexes, photos):
    py, cmd, _, _, _ = indexes
    image = os.path.join(str(photos), "jpg_420.jpg")
    ref = [json.loads(line) for line in cli(
        "search", cmd, "--text", "a horse", "--text", "zebra", "--image", image, "--json", "-k", 2,
        "--device", "cpu").stdout.decode().splitlines()]
    with imgsearch.Index(py, device="cpu") as idx:
        got = idx.search(text=["a horse", "zebra"], image=[image], k=2)
        one = idx.search(text="a horse", k=2)
        scores, rows = idx.search(text=["a horse", "zebra"], image=[image], k=2, arrays=True)
    assert len(got) == 3
    for hits, r in zip(got, ref):
        assert [(h.path, h.score) for h in hits] == [(x["path"], x["score"]) for x in r["results"]]
    assert one == got[0]
    assert rows.tolist() == [[h.row for h in hits] for hits in got]
    assert scores.tolist() == [[h.score for h in hits] for hits in got]
    assert got[2][0].path == image and got[2][0].score > 0.999  # an image finds itself


def test_search_against_the_stored_rows(indexes, image_encoder, photos):
    """An image query on the visual table: the cosine of its (normalized) features with the stored f16 rows."""
    py, _, _, _, _ = indexes
    image = os.path.join(str(photos), "horse.png")
    with imgsearch.Index(py, device="cpu", dtype="f32") as idx:
        hits = idx.search(image=image, k=3)
        q = image_encoder.embed(image).astype(np.float64)
        t = idx.features().astype(np.float64)
    s = (t / np.linalg.norm(t, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    assert [h.row for h in hits] == np.argsort(-s, kind="stable").tolist()
    assert np.abs(np.array([h.score for h in hits]) - np.sort(s)[::-1]).max() < 1e-3  # the stored rows are f16


def test_k_beyond_rows_and_semantic_image_queries(indexes, photos):
    py, _, _, _, _ = indexes
    with imgsearch.Index(py, device="cpu") as idx:
        hits = idx.search(text="zebra", k=10)
        assert len(hits) == 3
        scores, rows = idx.search(text="zebra", k=5, arrays=True)
        assert rows.shape == (5,) and (rows[3:] == -1).all() and np.isneginf(scores[3:]).all()
        hits = idx.search(image=os.path.join(str(photos), "horse.png"), k=3, table="semantic")
        assert hits[0].row == 0 and hits[0].score > 0.999  # ConSE, as its row was made


def test_index_resumes_and_extends(iv3, tiny_bert, photos, work):
    """A second run adds nothing; a new file is added alone."""
    out = work / "grow.idx"
    kw = dict(image_model=iv3, text_model=tiny_bert, device="cpu", threads=2)
    first = imgsearch.index(photos / "nested", out, **kw)
    again = imgsearch.index(photos / "nested", out, **kw)
    assert first.indexed == 1 and again.indexed == 0 and again.already == 1
    with pytest.raises(imgsearch.Error, match="conse"):
        imgsearch.index(photos / "nested", out, conse_top=3, **kw)  # settings must match the index's
    with imgsearch.Index(out, device="cpu") as idx:
        assert len(idx) == 1


def test_index_errors(iv3, work, photos):
    with pytest.raises(imgsearch.NotFoundError, match="not an index"):
        imgsearch.Index(work / "absent.idx")
    with pytest.raises(imgsearch.FileError):
        imgsearch.index(photos, work / "x.idx", image_model=work / "absent.isw", device="cpu")
    with pytest.raises(imgsearch.ArgumentError):
        imgsearch.index([], work / "x.idx", image_model=iv3)
    errors = []

    def boom(p):
        errors.append(p)
        raise RuntimeError("from the callback")
    with pytest.raises(RuntimeError, match="from the callback"):  # re-raised after the run
        imgsearch.index(photos / "nested", work / "cb.idx", image_model=iv3, device="cpu", progress=boom)
    assert len(errors) >= 2  # the run went on


def test_search_errors(indexes, work):
    py, _, _, _, _ = indexes
    with imgsearch.Index(py, device="cpu") as idx:
        with pytest.raises(imgsearch.ArgumentError):
            idx.search()
        with pytest.raises(imgsearch.ArgumentError):
            idx.search(text="x", k=0)
        with pytest.raises(imgsearch.ArgumentError):
            idx.search(text="x", table="nope")
        with pytest.raises(imgsearch.Error, match="absent.jpg"):
            idx.search(image=str(work / "absent.jpg"))
        with pytest.raises(imgsearch.Error):
            idx.search(image=str(IMAGES / "bad_truncated.png"))
        assert len(idx.search(text="still works", k=1)) == 1
    with pytest.raises(imgsearch.ClosedError):
        idx.search(text="x")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with imgsearch.Index(py, device="cpu") as idx:
            idx.search(text="x")
            idx.search(text="y")
    assert sum(issubclass(x.category, imgsearch.SyntheticWeightsWarning) for x in w) == 1


def test_semantic_absent(iv3, photos, work):
    out = work / "visual_only.idx"
    imgsearch.index(photos / "nested", out, image_model=iv3, device="cpu", threads=2)
    with imgsearch.Index(out, device="cpu") as idx:
        with pytest.raises(imgsearch.NotFoundError):
            idx.semantic()
        assert idx.config["text_model"] is None
        with pytest.raises(imgsearch.Error):
            idx.search(text="needs a text model")


def test_tampered_chunk_is_named(indexes, work):
    """A chunk file changed after its commit: named by the CRC-32 check as the
    tables load (verify=True, the default); verify=False checks sizes only."""
    import shutil
    py, _, _, _, _ = indexes
    copy = work / "tampered.idx"
    shutil.copytree(py, copy)
    f = copy / "chunk-000000.semantic.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0x01  # the last byte of a row: still a finite f16
    f.write_bytes(bytes(data))
    with imgsearch.Index(copy, device="cpu") as idx:
        with pytest.raises(imgsearch.Error, match="chunk-000000.semantic.npy") as e:
            idx.search(text="a horse")
        assert isinstance(e.value, (imgsearch.ChecksumError, imgsearch.FormatError))
    with imgsearch.Index(copy, device="cpu", verify=False) as idx:
        assert len(idx.search(text="a horse", k=3)) == 3


def test_missing_or_broken_chunk_file(indexes, work):
    """The library names a missing or resized chunk file when the index opens;
    features() names one that kept its size but is not a table any more."""
    import shutil
    py, _, _, _, _ = indexes
    for name, change in (("chunk-000001.visual.npy", lambda f: f.unlink()),
                         ("chunk-000000.semantic.npy", lambda f: f.write_bytes(b"not a npy file"))):
        copy = work / f"broken_{name}.idx"
        shutil.copytree(py, copy)
        change(copy / name)
        with pytest.raises(imgsearch.Error, match=name):
            imgsearch.Index(copy, device="cpu")
    copy = work / "garbled.idx"
    shutil.copytree(py, copy)
    f = copy / "chunk-000000.visual.npy"
    f.write_bytes(b"\0" * f.stat().st_size)  # same size, no .npy header
    with imgsearch.Index(copy, device="cpu") as idx:
        with pytest.raises(imgsearch.FormatError, match="chunk-000000.visual.npy"):
            idx.features()


def test_index_follows_the_folder(iv3, tiny_bert, work):
    """An index over time (docs/FORMAT.md): a file overwritten, one deleted, a
    broken one fixed, one added; a re-run with no settings (the index
    remembers them) equals a fresh index of the final folder, before and
    after a compaction; the live rows, their paths, vectors and locations line
    up; a second writer is refused."""
    import fcntl
    import shutil
    folder = work / "life"
    folder.mkdir()
    more = ["astronaut.png", "coffee.png", "rocket.jpg"]  # more distinct pictures
    for i, n in enumerate(GOOD_IMAGES):
        shutil.copy(IMAGES / n, folder / f"{i}{Path(n).suffix}")
    shutil.copy(IMAGES / "bad_truncated.png", folder / "broken.png")
    out = work / "life.idx"
    first = imgsearch.index(folder, out, image_model=iv3, text_model=tiny_bert, device="cpu", chunk_rows=2,
                            threads=2)
    assert first.added == 3 and first.failed == 1
    names = sorted(os.listdir(folder))
    overwritten, deleted = folder / names[0], folder / names[1]
    overwritten.write_bytes((IMAGES / more[0]).read_bytes())
    os.utime(overwritten, ns=(1, 10**18))  # a time no earlier run recorded
    deleted.unlink()
    shutil.copy(IMAGES / more[1], folder / "broken.png")
    shutil.copy(IMAGES / more[2], folder / "new.jpg")
    again = imgsearch.index(folder, out, device="cpu", threads=2)
    assert (again.added, again.updated, again.removed, again.retried) == (1, 1, 1, 1), again
    fresh = work / "life_fresh.idx"
    imgsearch.index(folder, fresh, image_model=iv3, text_model=tiny_bert, device="cpu", chunk_rows=2, threads=2)
    with imgsearch.Index(fresh, device="cpu") as ref:
        want = dict(zip(ref.paths, np.asarray(ref.features(), np.float32)))
    root = os.path.realpath(folder)
    assert sorted(want) == sorted(os.path.join(root, n) for n in os.listdir(folder))

    def check(idx, compacted):
        rows = idx.rows
        assert len(idx) == len(rows) == 4 and idx.failures == []
        assert (list(rows) == [0, 1, 2, 3]) == compacted
        feats = np.asarray(idx.features(), np.float32)
        assert feats.shape == (4, 2048) and sorted(idx.paths) == sorted(want)
        for p, f in zip(idx.paths, feats):
            assert np.array_equal(f, want[p]), p
        hits = idx.search(image=overwritten, k=4)
        assert hits[0].path == str(Path(root) / overwritten.name) and hits[0].score > 0.999
        for h in hits:  # the hit's chunk and offset find its vectors
            chunk = np.load(idx.path + f"/chunk-{h.chunk:06d}.visual.npy")
            assert np.array_equal(np.asarray(chunk[h.offset], np.float32), want[h.path])
            assert idx.path_of(h.row) == h.path
        assert idx.info["live_rows"] == 4 and idx.info["roots"] == [root] and idx.info["version"] == 2

    with imgsearch.Index(out, device="cpu") as idx:
        check(idx, compacted=False)
        with pytest.raises(imgsearch.ImageError) as e:
            idx.search(image=[overwritten, deleted], k=2)
        assert [f[0] for f in e.value.failures] == [1] and str(deleted) in e.value.failures[0][2]
        assert len(e.value.results[0]) == 2 and e.value.results[1] == []
    report = imgsearch.compact(out)
    assert (report.rows, report.dropped_rows, report.dropped_failures) == (4, 2, 1), report
    with imgsearch.Index(out, device="cpu") as idx:
        check(idx, compacted=True)
    with open(out / "lock", "a") as lock:  # another writer holds the index
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(imgsearch.BusyError, match=str(os.getpid())):
            imgsearch.index(folder, out, device="cpu")


def test_a_set_of_shards_searches_as_one_index(cli, iv3, tiny_bert, photos, work):
    """Index(path) of a folder of shards (index --shard I/N): the search
    answers as `search SET --json` (the command's set search, shards and rows
    included); totals for len/info; per-index reads refused, naming shard_paths."""
    shards = work / "shards"
    shards.mkdir()
    for i in range(2):
        cli("index", photos, "-o", shards / f"s{i}", "--shard", f"{i}/2", "--image-model", iv3, "--text-model",
            tiny_bert, "--device", "cpu", "--threads", 2, ok=(0, 3))
    want = json.loads(cli("search", shards, "--text", "a horse", "-k", 3, "--json", "--device", "cpu").stdout)
    with imgsearch.Index(shards, device="cpu") as idx:
        assert idx.is_set and len(idx) == 3 and idx.shard_paths == [str(shards / "s0"), str(shards / "s1")]
        assert idx.info["live_rows"] == 3 and idx.info["roots"] == [os.path.realpath(photos)]
        hits = idx.search(text="a horse", k=3)
        assert [(h.path, h.score, h.shard, h.row & ((1 << 40) - 1)) for h in hits] == \
            [(r["path"], pytest.approx(r["score"], abs=0), r["shard"], r["row"]) for r in want["results"]]
        with pytest.raises(imgsearch.UnsupportedError, match="shard_paths"):
            idx.features()
    with imgsearch.Index(shards / "s1", device="cpu") as one:
        assert not one.is_set and one.shard_paths == [str(shards / "s1")] and len(one.rows) == len(one)
