"""_fid.py: FID, KID and the Inception Score (the library's
engine/models/fid_stats.c and fid_metrics.c, as `imgsearch fid`), over
features and logits you have: ImageEncoder(fid_model).embed(paths) gives
them (what="features" for FID and KID, what="logits" for IS)."""
from __future__ import annotations

import ctypes
from typing import Optional, Tuple, Union

import numpy as np

from . import _ffi
from ._core import Handle, PathLike, array_arg, fs_path, int_arg, new_error, pointer
from ._errors import ArgumentError, check


class FidStats(Handle):
    """Streaming mean and covariance of feature rows (float64 sums), as
    pytorch-fid computes them (covariance over n - 1), without keeping the
    rows: add() them in any number of pieces.

        s = imgsearch.FidStats(2048)
        for batch in batches: s.add(batch)            # (n, 2048) float32
        s.save("real.npz")                            # pytorch-fid's and clean-fid's format
        imgsearch.fid(s, imgsearch.FidStats.load("other.npz"))
    """

    def __init__(self, dim: int):
        super().__init__()
        self._s = None
        self.mode = ""
        s = ctypes.POINTER(_ffi.ims_fid_stats)()
        err = new_error()
        check(_ffi.lib().ims_fid_stats_create(int_arg(dim, "dim", 1, 2**31 - 1), ctypes.byref(s), ctypes.byref(err)),
              err)
        self._s = s

    @classmethod
    def _wrap(cls, s, mode: str = "") -> "FidStats":
        self = cls.__new__(cls)
        Handle.__init__(self)
        self._s, self.mode = s, mode
        return self

    @classmethod
    def from_features(cls, features: np.ndarray) -> "FidStats":
        """The statistics of (n, dim) float32 features."""
        f = array_arg(features, "features", [np.float32], [2])
        s = cls(f.shape[1])
        s.add(f)
        return s

    @classmethod
    def from_moments(cls, mu: np.ndarray, sigma: np.ndarray, count: int = 0) -> "FidStats":
        """Statistics from a mean (dim) and covariance (dim, dim), float64 (copied); count 0: unknown."""
        mu = array_arg(mu, "mu", [np.float64], [1])
        sigma = array_arg(sigma, "sigma", [np.float64], [2], mu.shape[0])
        if sigma.shape[0] != mu.shape[0]:
            raise ArgumentError(f"sigma has shape {sigma.shape}; mu has {mu.shape[0]} values")
        s = ctypes.POINTER(_ffi.ims_fid_stats)()
        err = new_error()
        check(_ffi.lib().ims_fid_stats_from(pointer(mu, ctypes.c_double), pointer(sigma, ctypes.c_double),
                                            mu.shape[0], int_arg(count, "count", 0, 2**63 - 1), ctypes.byref(s),
                                            ctypes.byref(err)), err)
        return cls._wrap(s)

    @classmethod
    def load(cls, path: PathLike) -> "FidStats":
        """An .npz of mu and sigma (ours, pytorch-fid's or clean-fid's); .mode is
        the preprocessing it records ("" when it does not say)."""
        s = ctypes.POINTER(_ffi.ims_fid_stats)()
        mode = ctypes.create_string_buffer(64)
        err = new_error()
        check(_ffi.lib().ims_fid_stats_load(fs_path(path), ctypes.byref(s), mode, len(mode), ctypes.byref(err)), err)
        return cls._wrap(s, mode.value.decode("utf-8", "replace"))

    def _free(self) -> None:
        if self._s:
            _ffi.lib().ims_fid_stats_free(self._s)
        self._s = None

    @property
    def dim(self) -> int:
        with self._use():
            return int(_ffi.lib().ims_fid_stats_dim(self._s))

    @property
    def count(self) -> int:
        """The rows added (or what a loaded file says; 0 when it does not)."""
        with self._use():
            return int(_ffi.lib().ims_fid_stats_count(self._s))

    def add(self, features: np.ndarray) -> "FidStats":
        """Adds (n, dim) float32 feature rows; returns self."""
        f = array_arg(features, "features", [np.float32], [2], self.dim)
        err = new_error()
        with self._use():
            check(_ffi.lib().ims_fid_stats_add(self._s, pointer(f, ctypes.c_float), f.shape[0], ctypes.byref(err)),
                  err)
        return self

    def moments(self) -> Tuple[np.ndarray, np.ndarray]:
        """(mu, sigma): copies of the mean (dim) and covariance (dim, dim), float64."""
        mu, sigma = ctypes.POINTER(ctypes.c_double)(), ctypes.POINTER(ctypes.c_double)()
        err = new_error()
        with self._use():
            check(_ffi.lib().ims_fid_stats_get(self._s, ctypes.byref(mu), ctypes.byref(sigma), ctypes.byref(err)),
                  err)
            d = int(_ffi.lib().ims_fid_stats_dim(self._s))
            return (np.ctypeslib.as_array(mu, (d,)).copy(), np.ctypeslib.as_array(sigma, (d, d)).copy())

    def save(self, path: PathLike, mode: Optional[str] = None) -> None:
        """Writes mu and sigma (float64, pytorch-fid's keys) and the mode and count, crash-safely."""
        m = (self.mode if mode is None else mode).encode()
        err = new_error()
        with self._use():
            check(_ffi.lib().ims_fid_stats_save(self._s, fs_path(path), m, ctypes.byref(err)), err)

    def __repr__(self) -> str:
        return "<imgsearch.FidStats closed>" if self.closed else \
            f"<imgsearch.FidStats dim {self.dim}, {self.count} rows{', mode ' + self.mode if self.mode else ''}>"


def _stats(x, what: str) -> Tuple[FidStats, bool]:
    """x as statistics, and whether this call made them (and must close them)."""
    if isinstance(x, FidStats):
        return x, False
    if isinstance(x, np.ndarray):
        return FidStats.from_features(array_arg(x, what, [np.float32], [2])), True
    if isinstance(x, (str, bytes)) or hasattr(x, "__fspath__"):
        return FidStats.load(x), True
    raise ArgumentError(f"{what} must be FidStats, an (n, dim) float32 feature array or an .npz path, "
                        f"not {type(x).__name__}")


def fid(a: Union[FidStats, np.ndarray, PathLike], b: Union[FidStats, np.ndarray, PathLike]) -> float:
    """The Frechet Inception Distance between two sets, each FidStats, an
    (n, dim) float32 feature array or an .npz of statistics; as
    pytorch-fid's calculate_frechet_distance, in float64."""
    sa, own_a = _stats(a, "a")
    try:
        sb, own_b = _stats(b, "b")
        try:
            out = ctypes.c_double()
            err = new_error()
            with sa._use(), sb._use():
                check(_ffi.lib().ims_fid_distance(sa._s, sb._s, ctypes.byref(out), ctypes.byref(err)), err)
            return out.value
        finally:
            if own_b:
                sb.close()
    finally:
        if own_a:
            sa.close()


def kid(x: np.ndarray, y: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        gamma: Optional[float] = None, coef0: float = 1.0, seed: int = 2020) -> Tuple[float, float]:
    """Kernel Inception Distance (mean, std) of two (n, dim) float32 feature
    arrays: torch-fidelity's estimator and subset draws (the same seed gives
    its subsets; subset_size is capped at the smaller set, as clean-fid)."""
    x = array_arg(x, "x", [np.float32], [2])
    y = array_arg(y, "y", [np.float32], [2], x.shape[1])
    o = _ffi.ims_kid_options()
    lib = _ffi.lib()
    lib.ims_kid_options_init(ctypes.byref(o))
    o.subsets = int_arg(subsets, "subsets", 1, 1 << 30)
    o.subset_size = int_arg(subset_size, "subset_size", 2, 1 << 30)
    o.degree = int_arg(degree, "degree", 1, 64)
    o.gamma = 0.0 if gamma is None else float(gamma)
    o.coef0 = float(coef0)
    o.seed = int_arg(seed, "seed", 0, 2**32 - 1)
    mean, std, used = ctypes.c_double(), ctypes.c_double(), ctypes.c_int()
    err = new_error()
    check(lib.ims_kid(pointer(x, ctypes.c_float), x.shape[0], pointer(y, ctypes.c_float), y.shape[0], x.shape[1],
                      ctypes.byref(o), ctypes.byref(mean), ctypes.byref(std), ctypes.byref(used), ctypes.byref(err)),
          err)
    return mean.value, std.value


def inception_score(logits: np.ndarray, *, splits: int = 10, seed: int = 2020) -> Tuple[float, float]:
    """Inception Score (mean, std over splits) of (n, classes) float32 logits,
    as torch-fidelity computes it (rows shuffled by RandomState(seed))."""
    lg = array_arg(logits, "logits", [np.float32], [2])
    mean, std = ctypes.c_double(), ctypes.c_double()
    err = new_error()
    check(_ffi.lib().ims_inception_score(pointer(lg, ctypes.c_float), lg.shape[0], lg.shape[1],
                                         int_arg(splits, "splits", 1, 1 << 30), int_arg(seed, "seed", 0, 2**32 - 1),
                                         ctypes.byref(mean), ctypes.byref(std), ctypes.byref(err)), err)
    return mean.value, std.value


__all__ = ["FidStats", "fid", "inception_score", "kid"]
