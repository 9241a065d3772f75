"""_knn.py: exact k-nearest-neighbour search over your own embeddings (the
library's k-NN table, as `imgsearch knn`).

Rows are read in place from the caller's array (float32 or float16, C order)
and copied once into the table's storage (L2-normalized for cosine); queries
are read in place; the scores and ids come back in new arrays.
"""
from __future__ import annotations

import ctypes
from typing import Optional, Tuple, Union

import numpy as np

from . import _ffi
from ._core import Device, OnDevice, array_arg, choice, dtype_arg, int_arg, new_error, pointer
from ._errors import check

_METRICS = {"cosine": _ffi.IMS_KNN_METRIC_COSINE, "ip": _ffi.IMS_KNN_METRIC_IP}


class Table(OnDevice):
    """A resident k-NN table for repeated exact searches.

        t = imgsearch.Table(embeddings)                # (N, D) float32 or float16
        scores, ids = t.search(queries, k=10)          # (B, 10) float32, (B, 10) int64
        t.add(more_rows)                               # ids continue from len(t)

    data: an (N, D) array of the first rows, or the dimension D of an empty
    table. metric: "cosine" (rows and queries L2-normalized; a zero, NaN or
    Inf row is an error naming it) or "ip" (raw inner product). dtype: the
    storage, "f32" or "f16" (default as `imgsearch knn`: f16 on a GPU, f32 on
    the CPU); scores always accumulate in fp32. chunk_rows: keep the table in
    host memory and stream it through the GPU this many rows at a time (0: the
    table lives on the device). Results are exact: the best rows by score,
    equal scores by lower row id.
    """

    def __init__(self, data: Union[int, np.ndarray], *, metric: str = "cosine", dtype: Optional[str] = None,
                 device: Union[str, Device] = "auto", chunk_rows: int = 0):
        self._t = None
        rows = None
        if isinstance(data, np.ndarray):
            rows = array_arg(data, "data", (np.float32, np.float16), (2,))
            dim = rows.shape[1]
        else:
            dim = int_arg(data, "dim", 1, 1 << 20)
        metric_value = choice(metric, "metric", _METRICS)
        chunk_rows = int_arg(chunk_rows, "chunk_rows", 0, 2**31 - 1)
        super().__init__(device)
        try:
            if dtype is None:
                dtype = "f16" if self.device.kind == "cuda" else "f32"
            opts = _ffi.ims_knn_options()
            lib = _ffi.lib()
            lib.ims_knn_options_init(ctypes.byref(opts))
            opts.metric = metric_value
            opts.dtype = dtype_arg(dtype)
            opts.max_rows_per_chunk = chunk_rows
            t = ctypes.POINTER(_ffi.ims_knn_table)()
            err = new_error()
            with self._use():
                check(lib.ims_knn_create(self.device.ptr, dim, ctypes.byref(opts), ctypes.byref(t),
                                         ctypes.byref(err)), err)
            self._t = t
            self.dim = dim
            self.metric = metric
            self.dtype = "f16" if opts.dtype == _ffi.IMS_DTYPE_F16 else "f32"
            if rows is not None:
                self.add(rows)
        except BaseException:
            self.close()
            raise

    def _free_handle(self) -> None:
        if self._t:
            _ffi.lib().ims_knn_free(self._t)
        self._t = None

    def __len__(self) -> int:
        with self._use():
            return int(_ffi.lib().ims_knn_rows(self._t))

    def __repr__(self) -> str:
        if self.closed:
            return "<imgsearch.Table closed>"
        return f"<imgsearch.Table {len(self)} x {self.dim}, {self.metric}, {self.dtype} on {self.device.name}>"

    def reserve(self, rows: int) -> None:
        """Makes room for `rows` rows in all, in one allocation (before large adds)."""
        rows = int_arg(rows, "rows", 0, 2**31 - 1)
        err = new_error()
        with self._use():
            st = _ffi.lib().ims_knn_reserve(self._t, rows, ctypes.byref(err))
        check(st, err)

    def add(self, rows: np.ndarray) -> None:
        """Appends rows: float32 or float16 (n, dim), or one row (dim,), C order.
        Their ids continue from len(self). Nothing is added on failure."""
        rows = array_arg(rows, "rows", (np.float32, np.float16), (1, 2), self.dim)
        n = 1 if rows.ndim == 1 else rows.shape[0]
        dtype = _ffi.IMS_DTYPE_F32 if rows.dtype == np.float32 else _ffi.IMS_DTYPE_F16
        err = new_error()
        with self._use():
            st = _ffi.lib().ims_knn_append(self._t, rows.ctypes.data, dtype, n, ctypes.byref(err))
        check(st, err)

    def search(self, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """The k best rows for each query: (scores, ids), float32 and int64 of
        shape (B, k) for queries (B, dim) float32, or (k,) for one query (dim,).
        Best first, equal scores by lower id; with fewer than k rows the
        positions past them hold id -1 and score -inf (as FAISS)."""
        queries = array_arg(queries, "queries", (np.float32,), (1, 2), self.dim)
        k = int_arg(k, "k", 1, _ffi.IMS_KNN_MAX_K)
        b = 1 if queries.ndim == 1 else queries.shape[0]
        ids = np.empty((b, k), np.int64)
        scores = np.empty((b, k), np.float32)
        if b:
            err = new_error()
            with self._use():
                st = _ffi.lib().ims_knn_search(self._t, pointer(queries, ctypes.c_float), b, k,
                                               pointer(ids, ctypes.c_int64), pointer(scores, ctypes.c_float),
                                               ctypes.byref(err))
            check(st, err)
        if queries.ndim == 1:
            return scores[0], ids[0]
        return scores, ids


def knn(table: np.ndarray, queries: np.ndarray, k: int, metric: str = "cosine", *,
        device: Union[str, Device] = "auto", dtype: Optional[str] = None,
        chunk_rows: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Exact top-k search of one table for a batch of queries, as `imgsearch knn`.

    table: (N, D) float32 or float16; queries: (B, D) float32 (or one (D,)).
    Returns (scores, ids): float32 and int64 (B, k), best first, equal scores
    by lower row; positions past N hold id -1 and score -inf. metric, dtype,
    device, chunk_rows: as Table. For repeated searches keep a Table.
    """
    table = array_arg(table, "table", (np.float32, np.float16), (2,))
    array_arg(queries, "queries", (np.float32,), (1, 2), table.shape[1])
    int_arg(k, "k", 1, _ffi.IMS_KNN_MAX_K)
    with Table(table, metric=metric, dtype=dtype, device=device, chunk_rows=chunk_rows) as t:
        return t.search(queries, k)


__all__ = ["Table", "knn"]
