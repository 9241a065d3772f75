"""_index.py: image indexes (the folder `imgsearch index` writes,
docs/FORMAT.md): building one (the library's indexer), and reading and
searching it (the library's searcher, as `imgsearch search`).

The tables are read where they lie: features() and semantic() memory-map the
committed chunks' .npy files (numpy.load(mmap_mode="r"), the format's own
way for readers); which files, which rows each holds and which rows are
live (not tombstoned) come from the library's reading of the manifest.
"""
from __future__ import annotations

import ctypes
import dataclasses
import os
import warnings
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _ffi
from ._core import (MODE_NAMES, MODES, Device, OnDevice, PathLike, choice, dtype_arg, fs_path, int_arg,
                    new_error, precision_arg, string_array, text_bytes)
from ._errors import ArgumentError, FileError, FormatError, ImageError, NotFoundError, UnsupportedError, check
from ._models import _open_weights

_TABLES = {"visual": _ffi.IMS_INDEX_TABLE_VISUAL, "semantic": _ffi.IMS_INDEX_TABLE_SEMANTIC}
_TABLE_NAMES = {v: k for k, v in _TABLES.items()}
_PRECISION_NAMES = {_ffi.IMS_PRECISION_FP32: "fp32", _ffi.IMS_PRECISION_TF32: "tf32",
                    _ffi.IMS_PRECISION_FP16: "fp16"}


class SyntheticWeightsWarning(UserWarning):
    """The image model holds synthetic weights (`imgsearch convert --synthetic`): results are not meaningful."""


class Hit(NamedTuple):
    """One result of Index.search: the row id (its place in the index), the
    image's path, the cosine score, and where its vectors are: row `offset` of
    chunk-<chunk>.{visual,semantic}.npy in the index folder (of shard `shard`
    for a set, whose row ids are shard << 40 | the shard's row)."""
    row: int
    path: str
    score: float
    chunk: int
    offset: int
    shard: int = 0


@dataclasses.dataclass
class IndexReport:
    """What an index() run did (ims_index_progress): images to process in this
    run (total), processed (done), added as rows (indexed), recorded as
    failures (failed), already in the index as they are now (already),
    skipped for their names (ignored), the estimates, where the time went,
    why the rows were added (added: new files; updated: changed files, their
    old rows tombstoned; retried: files that had failed), records of files
    gone from the folders tombstoned (removed), chunks committed (commits)
    and whether the image model's weights are synthetic."""
    stage: str
    total: int
    done: int
    indexed: int
    failed: int
    already: int
    ignored: int
    estimated_disk_bytes: int
    estimated_host_bytes: int
    elapsed_s: float
    decode_wait_s: float
    model_s: float
    write_s: float
    added: int
    updated: int
    retried: int
    removed: int
    commits: int
    synthetic: bool

    @classmethod
    def _from(cls, p: _ffi.ims_index_progress) -> "IndexReport":
        stage = {_ffi.IMS_INDEX_STAGE_PLANNED: "planned", _ffi.IMS_INDEX_STAGE_RUNNING: "running",
                 _ffi.IMS_INDEX_STAGE_FINISHED: "finished"}.get(p.stage, str(p.stage))
        values = [getattr(p, f.name) for f in dataclasses.fields(cls)[1:]]
        values[-1] = bool(values[-1])
        return cls(stage, *values)


@dataclasses.dataclass
class CompactReport:
    """What compact() did (ims_index_compact_report): the format version it
    read, the live rows and failures kept, the tombstoned ones dropped, the
    chunks and bytes on disk before and after."""
    from_version: int
    rows: int
    failures: int
    dropped_rows: int
    dropped_failures: int
    chunks_before: int
    chunks_after: int
    bytes_before: int
    bytes_after: int


def _identity(i: _ffi.ims_weights_identity) -> dict:
    return {"name": os.fsdecode(i.name), "path": os.fsdecode(i.path), "bytes": i.bytes,
            "crc32": f"{i.crc32:08x}", "synthetic": bool(i.synthetic)}


class Index(OnDevice):
    """An image index (the folder `imgsearch index` or imgsearch.index() writes).

        idx = imgsearch.Index("photos.idx")
        for hit in idx.search(text="a cat on a sofa", k=10):
            print(hit.score, hit.path)
        idx.search(image="query.jpg")               # by example image
        feats = idx.features()                      # (len(idx), 2048), memory-mapped

    The models, their precision and the table storage are the index's (from its
    manifest) unless given: image_model and text_model paths override where
    the models are read from (they are checked against the size and CRC-32 the
    index recorded), precision the image model's arithmetic, dtype the
    tables' storage during searches (default f16 on a GPU, f32 on the CPU).
    Models and tables are loaded on the first search that needs them and kept;
    verify (default True) checks each chunk file's CRC-32 against the manifest
    as the tables load (False: sizes only). features() and semantic() map the
    files as they are, unchecked.

    path may also name a set of shards (`imgsearch index --shard`, a set file
    or a folder of shard folders): search() answers as one index of the same
    files would, len(), config and info are totals; what reads one index's
    files (rows, paths, features, chunks, failures) is per shard
    (shard_paths).
    """

    def __init__(self, path: PathLike, device: Union[str, Device] = "auto", *, precision: Optional[str] = None,
                 dtype: Optional[str] = None, image_model: Optional[PathLike] = None,
                 text_model: Optional[PathLike] = None, batch_size: int = 16, threads: int = 4,
                 verify: bool = True):
        self._set = self._idx = self._searcher = None
        self._keep = []  # the option strings the searcher points at
        opts = _ffi.ims_search_options()
        _ffi.lib().ims_search_options_init(ctypes.byref(opts))
        if precision is not None:
            opts.precision = precision_arg(precision)
        if dtype is not None:
            opts.dtype = dtype_arg(dtype)
        for name, value in (("image_model", image_model), ("text_model", text_model)):
            if value is not None:
                b = fs_path(value, name)
                self._keep.append(b)
                setattr(opts, name, b)
        opts.batch_size = int_arg(batch_size, "batch_size", 1, 65536)
        opts.threads = int_arg(threads, "threads", 1, 256)
        opts.verify = 1 if verify else 0
        self._opts = opts
        path_bytes = fs_path(path, "index path")
        super().__init__(device)
        try:
            lib = _ffi.lib()
            s = ctypes.POINTER(_ffi.ims_index_set)()
            err = new_error()
            check(lib.ims_index_set_open(path_bytes, ctypes.byref(s), ctypes.byref(err)), err)
            self._set = s
            # one index: the set's only shard (the set owns it); a set of shards: searches and totals only
            self._idx = None if lib.ims_index_set_is_set(s) else lib.ims_index_set_shard(s, 0)
            self.path = os.fsdecode(path_bytes)
            self._paths: Optional[List[str]] = None
            self._warned = False
        except BaseException:
            self.close()
            raise

    def _free_handle(self) -> None:
        lib = _ffi.lib()
        if self._searcher:
            lib.ims_searcher_close(self._searcher)
        if self._set:
            lib.ims_index_set_close(self._set)
        self._searcher = self._idx = self._set = None

    def _index(self, what: str):
        """The index of a single-index Index; UnsupportedError for a set (call under _use)."""
        if self._idx is None:
            raise UnsupportedError(f"{what} of a set of shards: open one shard (Index(path) with a path of "
                                   "shard_paths)")
        return self._idx

    @property
    def is_set(self) -> bool:
        """True when the path named a set of shards (a set file or a folder of shard folders)."""
        with self._use():
            return bool(_ffi.lib().ims_index_set_is_set(self._set))

    @property
    def shard_paths(self) -> List[str]:
        """The shards' index folders (one, the index itself, for an index)."""
        lib = _ffi.lib()
        with self._use():
            return [os.fsdecode(lib.ims_index_set_shard_path(self._set, i))
                    for i in range(lib.ims_index_set_shard_count(self._set))]

    def __len__(self) -> int:
        """The live rows: those a search can return (tombstoned rows, of files
        since changed or deleted, are not counted); of every shard for a set."""
        return self.info["live_rows"]

    def __repr__(self) -> str:
        if self.closed:
            return "<imgsearch.Index closed>"
        return f"<imgsearch.Index {self.path!r}: {len(self)} rows on {self.device.name}>"

    # -- what the index holds --

    @property
    def config(self) -> dict:
        """The manifest's settings: mode, dtype, chunk_rows, visual_dim,
        semantic_dim, conse_top, precision (None if not recorded), image_model
        and text_model (name, path, bytes, crc32, synthetic; text_model None
        without a semantic table)."""
        with self._use():
            c = _ffi.lib().ims_index_set_config(self._set).contents
            return {"mode": MODE_NAMES.get(c.mode, str(c.mode)),
                    "dtype": "f16" if c.dtype == _ffi.IMS_DTYPE_F16 else "f32",
                    "chunk_rows": c.chunk_rows, "visual_dim": c.visual_dim, "semantic_dim": c.semantic_dim,
                    "conse_top": c.conse_top, "precision": _PRECISION_NAMES.get(c.precision),
                    "image_model": _identity(c.image_model),
                    "text_model": _identity(c.text_model) if c.semantic_dim > 0 else None}

    @property
    def info(self) -> dict:
        """As `imgsearch info`: the format version, rows and failures stored
        and live, chunks, bytes on disk, the last commit (UTC, "" if not
        recorded) and the indexed roots (absolute paths); totals over the
        shards for a set (the lowest version, the latest commit)."""
        lib = _ffi.lib()
        with self._use():
            i = _ffi.ims_index_info()
            lib.ims_index_set_get_info(self._set, ctypes.byref(i))
            roots = []
            for s in range(lib.ims_index_set_shard_count(self._set)):
                idx = lib.ims_index_set_shard(self._set, s)
                info = _ffi.ims_index_info()
                lib.ims_index_get_info(idx, ctypes.byref(info))
                roots += [os.fsdecode(lib.ims_index_root(idx, r)) for r in range(info.root_count)
                          if os.fsdecode(lib.ims_index_root(idx, r)) not in roots]
        return {"version": i.version, "rows": i.rows, "live_rows": i.live_rows, "failures": i.failures,
                "live_failures": i.live_failures, "chunks": i.chunks, "disk_bytes": i.disk_bytes,
                "committed": i.committed.decode(), "roots": roots}

    @property
    def synthetic(self) -> bool:
        """True if the index was made with synthetic image weights: its results are not meaningful."""
        return self.config["image_model"]["synthetic"]

    @property
    def chunk_count(self) -> int:
        with self._use():
            return int(_ffi.lib().ims_index_chunk_count(self._index("chunk_count")))

    @property
    def chunks(self) -> List[Tuple[int, int, int]]:
        """(id, first_row, rows) of each committed chunk, in row order: its
        files are chunk-<id>.*, its rows the ids first_row .. first_row + rows
        - 1, tombstoned ones included."""
        lib = _ffi.lib()
        out = []
        with self._use():
            idx = self._index("chunks")
            for c in range(lib.ims_index_chunk_count(idx)):
                cid, first, rows = ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int64()
                err = new_error()
                check(lib.ims_index_chunk(idx, c, ctypes.byref(cid), ctypes.byref(first), ctypes.byref(rows),
                                          ctypes.byref(err)), err)
                out.append((cid.value, first.value, rows.value))
        return out

    @property
    def rows(self) -> np.ndarray:
        """The live row ids, ascending (int64): row i of features() and
        semantic() and paths[i] are row rows[i]; search returns these ids."""
        lib = _ffi.lib()
        with self._use():
            idx = self._index("rows")
            n = lib.ims_index_live_rows(idx, None, 0)
            out = np.empty(n, np.int64)
            lib.ims_index_live_rows(idx, out.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), n)
        return out

    def path_of(self, row: int) -> str:
        """The path of row id `row` (live or tombstoned)."""
        with self._use():
            idx = self._index("path_of")
            e = _ffi.lib().ims_index_row(idx, int_arg(row, "row", 0, 2**63 - 1))
            if not e:
                raise ArgumentError(f"row {row} is out of range 0..{_ffi.lib().ims_index_row_count(idx) - 1}")
            return os.fsdecode(e.contents.path)

    @property
    def paths(self) -> List[str]:
        """The path of every live row, in the order of rows (paths[i] is row rows[i]'s)."""
        if self._paths is None:
            lib = _ffi.lib()
            with self._use():
                idx = self._index("paths")
                self._paths = [os.fsdecode(lib.ims_index_row(idx, int(r)).contents.path) for r in self.rows]
        return self._paths

    @property
    def failures(self) -> List[Tuple[str, str]]:
        """(path, reason) of every file that could not be indexed (and has not
        been indexed since, nor deleted)."""
        lib = _ffi.lib()
        with self._use():
            out = []
            idx = self._index("failures")
            for i in range(lib.ims_index_failure_count(idx)):
                if lib.ims_index_failure_live(idx, i):
                    f = lib.ims_index_failure(idx, i).contents
                    out.append((os.fsdecode(f.path), f.reason.decode("utf-8", "replace")))
            return out

    def _table(self, name: str, chunks: bool):
        cfg = self.config
        if name == "semantic" and cfg["semantic_dim"] == 0:
            raise NotFoundError("this index has no semantic table (it was built without a text model)")
        dim = cfg["visual_dim" if name == "visual" else "semantic_dim"]
        dtype = np.float16 if cfg["dtype"] == "f16" else np.float32
        live = self.rows
        parts, selected = [], []
        for cid, first, rows in self.chunks:
            if rows == 0:  # a chunk of tombstones or failures only
                continue
            path = os.path.join(self.path, f"chunk-{cid:06d}.{name}.npy")
            try:
                p = np.load(path, mmap_mode="r")
            except OSError as e:
                raise FileError(f"{path}: {e.strerror or e}") from None
            except ValueError as e:
                raise FormatError(f"{path}: {e}") from None
            if not isinstance(p, np.ndarray) or p.shape != (rows, dim):
                raise FormatError(f"{path}: a table of shape {getattr(p, 'shape', None)}; the manifest says "
                                  f"({rows}, {dim})")
            parts.append(p)
            lo, hi = np.searchsorted(live, [first, first + rows])
            selected.append(p if hi - lo == rows else p[live[lo:hi] - first])
        if chunks:
            return parts
        if len(selected) == 1:
            return selected[0]
        return np.concatenate(selected) if selected else np.empty((0, dim), dtype)

    def features(self, chunks: bool = False):
        """The visual table: L2-normalized Inception-v3 pool features of the
        live rows, (len(idx), visual_dim) in the stored dtype (float16 by
        default): row i is row id rows[i]. Memory-mapped read-only when one
        chunk holds them all and none is tombstoned; else a copy in memory.
        chunks=True: the memory-mapped chunk files as stored, one array per
        chunk that holds rows (tombstoned rows included; Index.chunks says
        which row ids each holds)."""
        return self._table("visual", chunks)

    def semantic(self, chunks: bool = False):
        """The semantic table (ConSE embeddings in the text model's space),
        as features(); NotFoundError for an index made without a text model."""
        return self._table("semantic", chunks)

    # -- search --

    def search(self, text: Union[str, Sequence[str], None] = None, image: Union[PathLike, Sequence[PathLike], None] = None,
               k: int = 10, *, table: str = "visual", arrays: bool = False):
        """The k rows most similar to each query (cosine similarity, exact), as `imgsearch search`.

        text: a query text or a list of them (searches the semantic table: the
        index needs a text model). image: an image file or a list of them
        (searches the visual table, or with table="semantic" the ConSE table
        as texts do). Both may be given: texts first, then images, answered
        in one call per table.

        Returns, for one query (a single text or image), a list of Hit(row,
        path, score), best first (equal scores by path, then row); for lists, one
        such list per query. With arrays=True: (scores, rows) instead,
        float32 and int64 of shape (queries, k) (or (k,) for one query),
        positions past the index's rows holding row -1 and score -inf.

        The index's own models embed the queries (checked against its
        manifest). Queries that cannot be embedded (an image that cannot be
        read, a blank text) raise ImageError once the others are answered:
        its failures are [(query number, query, reason)] (texts first, then
        images, as numbered here), its results what the call would have
        returned, with an empty answer for each failed query.
        """
        k = int_arg(k, "k", 1, _ffi.IMS_KNN_MAX_K)
        table_value = choice(table, "table", _TABLES)
        texts = [] if text is None else [text] if isinstance(text, (str, bytes)) else list(text)
        images = [] if image is None else [image] if isinstance(image, (str, bytes, os.PathLike)) else list(image)
        single = (isinstance(text, (str, bytes)) and image is None) or (
            text is None and isinstance(image, (str, bytes, os.PathLike)))
        if not texts and not images:
            raise ArgumentError("no query: give text=... or image=...")
        keep = [text_bytes(t, f"text[{i}]") for i, t in enumerate(texts)]
        keep += [fs_path(p, f"image[{i}]") for i, p in enumerate(images)]
        n = len(keep)
        queries = (_ffi.ims_search_query * max(n, 1))()
        for i, b in enumerate(keep):
            if i < len(texts):
                queries[i].text = b
            else:
                queries[i].image = b
            queries[i].table = table_value
        out, failures = self._run_search(queries, n, k)
        if arrays:
            scores = np.full((n, k), -np.inf, np.float32)
            rows = np.full((n, k), -1, np.int64)
            for q, hits in enumerate(out):
                for j, h in enumerate(hits):
                    rows[q, j], scores[q, j] = h.row, h.score
            result = (scores[0], rows[0]) if single else (scores, rows)
        else:
            result = out[0] if single else out
        if failures:
            q, code, reason = failures[0]
            queries_given = texts + images
            e = ImageError(f"query {q}: {reason}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""),
                           code, [(q, queries_given[q], r) for q, _, r in failures])
            e.results = result
            raise e
        return result

    def _run_search(self, queries, n: int, k: int) -> Tuple[List[List[Hit]], list]:
        lib = _ffi.lib()
        err = new_error()
        res = ctypes.POINTER(_ffi.ims_search_results)()
        with self._use():
            if not self._searcher:
                self._opts.backend = self.device.ptr
                s = ctypes.POINTER(_ffi.ims_searcher)()
                check(lib.ims_searcher_open_set(self._set, ctypes.byref(self._opts), ctypes.byref(s), ctypes.byref(err)),
                      err)
                self._searcher = s
            st = lib.ims_searcher_search(self._searcher, queries, n, k, ctypes.byref(res), ctypes.byref(err))
            synthetic = lib.ims_searcher_synthetic(self._searcher)
        if synthetic and not self._warned:
            self._warned = True
            warnings.warn(f"{self.path}: the image model holds synthetic weights: results are not meaningful",
                          SyntheticWeightsWarning, stacklevel=3)
        check(st, err)
        try:
            out, failures = [], []
            r = res.contents
            for q in range(r.count):
                result = r.results[q]
                if result.status != _ffi.IMS_OK:
                    failures.append((q, result.status, (result.error or b"").decode("utf-8", "replace")))
                out.append([Hit(int(h.row), os.fsdecode(h.path), float(h.score), int(h.chunk), int(h.offset),
                                int(h.row) >> 40)
                            for h in (result.hits[j] for j in range(result.count))])
            return out, failures
        finally:
            lib.ims_search_results_free(res)


# ---- Building an index ----------------------------------------------------------------


class ImageList(NamedTuple):
    """The image files under some roots, as the indexer lists them: paths
    (sorted by their bytes, no duplicates), problems [(path, reason)] of what
    could not be listed, and the files ignored for their names (sorted)."""
    paths: List[str]
    problems: List[Tuple[str, str]]
    ignored: List[str]


def list_images(roots: Union[PathLike, Sequence[PathLike]]) -> ImageList:
    """The image files (named .jpg, .jpeg, .jpe, .jfif, .png, .webp, .tif,
    .tiff, .gif or .bmp, any case) under roots, with the library's walk, the
    one `imgsearch index` uses: folders walked
    recursively, symbolic links followed, each folder entered once; a root
    that is a file is taken as it is."""
    if isinstance(roots, (str, bytes, os.PathLike)):
        roots = [roots]
    root_bytes = [fs_path(r, "root") for r in roots]
    lst = _ffi.ims_file_list()
    err = new_error()
    lib = _ffi.lib()
    check(lib.ims_file_list_walk(string_array(root_bytes), len(root_bytes), ctypes.byref(lst), ctypes.byref(err)),
          err)
    try:
        paths = [os.fsdecode(lst.files[i].path) for i in range(lst.file_count)]
        problems = [(os.fsdecode(lst.problems[i].path), lst.problems[i].reason.decode("utf-8", "replace"))
                    for i in range(lst.problem_count)]
        ignored = [os.fsdecode(lst.ignored[i]) for i in range(lst.ignored_count)] if lst.ignored else []
        return ImageList(paths, problems, ignored)
    finally:
        lib.ims_file_list_free(ctypes.byref(lst))


def index(roots: Union[PathLike, Sequence[PathLike]], output: PathLike, image_model: Optional[PathLike] = None,
          text_model: Optional[PathLike] = None, *, device: Union[str, Device] = "auto",
          precision: Optional[str] = None, mode: Optional[str] = None, dtype: Optional[str] = None,
          batch_size: Optional[int] = None, threads: Optional[int] = None, chunk_rows: Optional[int] = None,
          conse_top: Optional[int] = None, commit_every: Optional[float] = None, retry_failed: bool = False,
          verify_content: bool = False, prune: bool = True,
          progress: Optional[Callable[[IndexReport], None]] = None,
          on_failure: Optional[Callable[[str, str], None]] = None,
          on_warning: Optional[Callable[[str, str], None]] = None) -> IndexReport:
    """Indexes image folders (and files) into the index folder `output`, as
    `imgsearch index`: creates it, or brings it up to date with the folders
    (new files added; changed files re-indexed, their old rows tombstoned;
    deleted files' rows tombstoned unless prune=False; failed files retried
    when they changed, or always with retry_failed; verify_content compares
    each file's CRC-32 too). One writer at a time: BusyError, naming the
    holder, while another process writes the index.

    image_model: an Inception-v3 weight file; text_model: a BERT weight file
    (adds the semantic table: search by text). An existing index remembers
    its models and settings: left at None they are the index's, given they
    must equal them (else an ArgumentError naming both). For a new index:
    image_model is required; precision (default fp16 on a GPU, fp32 on the
    CPU); mode "torchvision", "fid" or "clean" (default: the model's); dtype "f16"
    (default) or "f32"; chunk_rows (4096); conse_top (10). Speed and
    durability may change from run to run: batch_size (default 64 on a GPU,
    16 on the CPU), threads (decode threads; default the CPU count, at most
    16), commit_every (commit at least every this many seconds; 60).

    Bad images are skipped and recorded in the index (on_failure(path,
    reason) hears of each); on_warning(path, message) hears of images indexed
    with a warning (a possible decompression bomb); progress(IndexReport) is
    called after each batch. They run on this thread; an exception they raise is re-raised when the
    run ends (the run itself is not interrupted). Returns the final counts.
    """
    if isinstance(roots, (str, bytes, os.PathLike)):
        roots = [roots]
    root_bytes = [fs_path(r, "root") for r in roots]
    if not root_bytes:
        raise ArgumentError("no folders or images to index")
    out_bytes = fs_path(output, "output")
    opts = _ffi.ims_index_run_options()
    lib = _ffi.lib()
    lib.ims_index_run_options_init(ctypes.byref(opts))
    if precision is not None:
        opts.precision = precision_arg(precision)
    if mode is not None:
        opts.mode = choice(mode, "mode", MODES)
    if dtype is not None:
        opts.dtype = dtype_arg(dtype)
    if chunk_rows is not None:
        opts.chunk_rows = int_arg(chunk_rows, "chunk_rows", 1, 2**31 - 1)
    if conse_top is not None:
        opts.conse_top = int_arg(conse_top, "conse_top", 1, 100000)
    if batch_size is not None:
        opts.batch_size = int_arg(batch_size, "batch_size", 1, 4096)
    if threads is not None:
        opts.threads = int_arg(threads, "threads", 1, 256)
    if commit_every is not None:
        if not isinstance(commit_every, (int, float)) or not 0 < commit_every < 1e9:
            raise ArgumentError(f"commit_every must be a number of seconds > 0, not {commit_every!r}")
        opts.commit_every_s = float(commit_every)
    opts.retry_failed = 1 if retry_failed else 0
    opts.verify_content = 1 if verify_content else 0
    opts.keep_missing = 0 if prune else 1
    errors: list = []

    def guarded(fn):
        def call(*args):
            try:
                fn(*args)
            except BaseException as e:  # never unwind through C
                if not errors:
                    errors.append(e)
        return call

    progress_cb = _ffi.PROGRESS_FN(guarded(lambda ctx, p: progress(IndexReport._from(p.contents)))) if progress \
        else _ffi.PROGRESS_FN()
    failure_cb = _ffi.FAILURE_FN(guarded(lambda ctx, path, reason: on_failure(
        os.fsdecode(path), reason.decode("utf-8", "replace")))) if on_failure else _ffi.FAILURE_FN()
    warning_cb = _ffi.FAILURE_FN(guarded(lambda ctx, path, message: on_warning(
        os.fsdecode(path), message.decode("utf-8", "replace")))) if on_warning else _ffi.FAILURE_FN()
    with _Run(device) as run:
        image_w = text_w = None
        try:
            if image_model is not None:
                image_w = _open_weights(image_model)
            if text_model is not None:
                text_w = _open_weights(text_model)
            c_roots = string_array(root_bytes)
            opts.index_dir = out_bytes
            opts.roots = c_roots
            opts.root_count = len(root_bytes)
            opts.image_model = image_w
            opts.text_model = text_w
            opts.progress = progress_cb
            opts.on_failure = failure_cb
            opts.on_warning = warning_cb
            result = _ffi.ims_index_progress()
            err = new_error()
            with run._use():
                opts.backend = run.device.ptr
                st = lib.ims_index_run(ctypes.byref(opts), ctypes.byref(result), ctypes.byref(err))
        finally:
            lib.ims_weights_close(text_w)
            lib.ims_weights_close(image_w)
    check(st, err)
    if errors:
        raise errors[0]
    report = IndexReport._from(result)
    if report.synthetic:
        warnings.warn(f"{os.fsdecode(out_bytes)}: the image model holds synthetic weights: the embeddings are not "
                      "meaningful", SyntheticWeightsWarning, stacklevel=2)
    return report


def compact(path: PathLike, *, upgrade: bool = False, base: Optional[PathLike] = None) -> CompactReport:
    """Rewrites an index without its tombstoned rows and failures, as
    `imgsearch index --compact`: crash-safe (a kill at any moment leaves the
    old index or the new one), under the writer lock; row ids are
    renumbered. upgrade=True also accepts a format-version-1 index and
    rewrites it as version 2, its relative paths made absolute against base
    (the folder it was indexed from; default the current folder)."""
    path_bytes = fs_path(path, "index path")
    opts = _ffi.ims_index_compact_options()
    lib = _ffi.lib()
    lib.ims_index_compact_options_init(ctypes.byref(opts))
    opts.upgrade = 1 if upgrade else 0
    base_bytes = fs_path(base, "base") if base is not None else None
    opts.base = base_bytes
    report = _ffi.ims_index_compact_report()
    err = new_error()
    check(lib.ims_index_compact(path_bytes, ctypes.byref(opts), ctypes.byref(report), ctypes.byref(err)), err)
    return CompactReport(*(getattr(report, f.name) for f in dataclasses.fields(CompactReport)))


class _Run(OnDevice):
    """A device held for the length of one call (index())."""


__all__ = ["CompactReport", "Index", "Hit", "ImageList", "IndexReport", "compact", "index", "list_images",
           "SyntheticWeightsWarning"]
