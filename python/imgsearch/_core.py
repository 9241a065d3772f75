"""_core.py: what every object of the package shares: the lifetime of a C
handle, the device it runs on, and the checks of arguments before they reach C.

Lifetime: a Handle frees its C resources exactly once: on close(), at the end
of a `with` block, or when it is garbage-collected. Closing an object first
closes the objects that depend on it (a Device closes the encoders, tables
and indexes made on it; an encoder its running batch loops), so no C handle
is ever used after the one it needs is freed; a closed object raises
ClosedError.

Threads: the C objects are not thread-safe, and the objects on one device
share its stream and scratch memory, so each call into C holds its device's
lock (an RLock): threads may share objects, their calls on one device run one
at a time. The GIL is released during the calls themselves (ctypes).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import weakref
from typing import Any, Iterator, Sequence, Union

import numpy as np

from . import _ffi
from ._errors import ArgumentError, ClosedError, check

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


class Handle:
    """Base of every object that owns C resources."""

    _lock: Any = None

    def __init__(self, lock: Any = None):
        self._lock = lock if lock is not None else threading.RLock()
        self._closed = False
        self._children: weakref.WeakSet = weakref.WeakSet()

    def _free(self) -> None:
        """Frees this object's own C resources (called once, under the lock)."""

    def close(self) -> None:
        """Frees the C resources now (and those of the objects that depend on this one). Idempotent."""
        lock = self._lock
        if lock is None:  # __init__ did not get far
            return
        with lock:
            for child in list(self._children):
                child.close()
            if not self._closed:
                self._closed = True
                self._free()

    @property
    def closed(self) -> bool:
        """True once close() ran (or the object's device was closed)."""
        return self._closed

    @contextlib.contextmanager
    def _use(self) -> Iterator[None]:
        """Holds the lock for a C call; ClosedError if the object is closed."""
        with self._lock:
            if self._closed:
                raise ClosedError(f"this {type(self).__name__} is closed")
            yield

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be gone already
            pass


# ---- Devices ---------------------------------------------------------------------


def cuda_compiled() -> bool:
    """True if this build of the library contains the CUDA backend."""
    return bool(_ffi.lib().ims_cuda_compiled())


def cuda_device_count() -> int:
    """The number of usable CUDA devices (0 without a GPU or in a CPU-only build)."""
    count = ctypes.c_int(0)
    return count.value if _ffi.lib().ims_cuda_device_count(ctypes.byref(count), None) == _ffi.IMS_OK else 0


def _parse_device(spec: str) -> tuple[str, int]:
    """"auto", "cpu", "cuda", "cuda:N" (or "auto:N") -> (kind, gpu)."""
    if not isinstance(spec, str):
        raise ArgumentError(f"device must be a str ('auto', 'cpu', 'cuda', 'cuda:N') or a Device, "
                            f"not {type(spec).__name__}")
    kind, _, index = spec.partition(":")
    if kind not in ("auto", "cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise ArgumentError(f"device '{spec}': expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return kind, int(index) if index else 0


class Device(Handle):
    """A compute backend: the CPU, or one GPU.

    Device("auto") is the GPU when one is usable (as the command line's
    --device auto), else the CPU; Device("cpu"), Device("cuda"), Device("cuda:1").
    Objects made with a device string own a device of their own; pass one
    Device to several objects to share it (one stream, one lock).
    """

    def __init__(self, device: str = "auto"):
        super().__init__()
        kind, gpu = _parse_device(device)
        if kind == "auto":
            kind = "cuda" if cuda_device_count() > gpu else "cpu"
        be = ctypes.POINTER(_ffi.ims_backend)()
        err = _ffi.ims_error()
        check(_ffi.lib().ims_backend_create(_ffi.IMS_BACKEND_CUDA if kind == "cuda" else _ffi.IMS_BACKEND_CPU, gpu,
                                            ctypes.byref(be), ctypes.byref(err)), err)
        self._ptr = be

    def _free(self) -> None:
        _ffi.lib().ims_backend_free(self._ptr)
        self._ptr = None

    @property
    def ptr(self):
        """The ims_backend pointer (for the binding's own calls)."""
        if self._closed:
            raise ClosedError("this Device is closed")
        return self._ptr

    @property
    def info(self) -> dict:
        """The backend's description: kind, name ("cpu", "cuda:0"), device, threads, memory, versions."""
        with self._use():
            i = _ffi.lib().ims_backend_get_info(self._ptr).contents
            out = {name: getattr(i, name) for name, _ in _ffi.ims_backend_info._fields_}
        out["kind"] = "cuda" if i.kind == _ffi.IMS_BACKEND_CUDA else "cpu"
        out["name"] = i.name.decode()
        out["device"] = i.device.decode("utf-8", "replace")
        return out

    @property
    def kind(self) -> str:
        """"cpu" or "cuda"."""
        return self.info["kind"]

    @property
    def name(self) -> str:
        """"cpu", "cuda:0", ..."""
        return self.info["name"]

    def __repr__(self) -> str:
        return "<imgsearch.Device closed>" if self._closed else f"<imgsearch.Device {self.name}>"


class OnDevice(Handle):
    """A Handle that runs on a Device: it uses the device's lock, and closes
    before it (a device made from a string is owned, and closed with it)."""

    def __init__(self, device: Union[str, Device]):
        if isinstance(device, Device):
            owned = False
        else:
            device = Device(device)
            owned = True
        if device.closed:
            raise ClosedError("the Device is closed")
        super().__init__(device._lock)
        self._device = device
        self._owns_device = owned
        device._children.add(self)

    @property
    def device(self) -> Device:
        """The Device this object runs on."""
        return self._device

    def _free_handle(self) -> None:
        """Frees the subclass's C handles."""

    def _free(self) -> None:
        self._free_handle()
        if self._owns_device:
            self._device.close()


# ---- Arguments -----------------------------------------------------------------


def fs_path(path: PathLike, what: str = "path") -> bytes:
    """A path as the C library takes it (bytes, os.fsencode); no NUL byte."""
    try:
        p = os.fsencode(os.fspath(path))
    except TypeError:
        raise ArgumentError(f"{what} must be a str, bytes or os.PathLike, not {type(path).__name__}") from None
    if b"\0" in p:
        raise ArgumentError(f"{what} {path!r} contains a NUL byte")
    return p


def text_bytes(text: Union[str, bytes], what: str = "text", nul_ok: bool = False) -> bytes:
    """A text as UTF-8 bytes (bytes pass as they are: invalid UTF-8 becomes U+FFFD in the tokenizer)."""
    if isinstance(text, str):
        try:
            b = text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ArgumentError(f"{what} {text!r} cannot be encoded as UTF-8: {e.reason}") from None
    elif isinstance(text, (bytes, bytearray)):
        b = bytes(text)
    else:
        raise ArgumentError(f"{what} must be a str or bytes, not {type(text).__name__}")
    if not nul_ok and b"\0" in b:
        raise ArgumentError(f"{what} {text!r} contains a NUL character")
    return b


def string_array(items: Sequence[bytes]):
    """A C array of char pointers (const char *const *) to the bytes objects, which must outlive it."""
    arr = (ctypes.c_char_p * max(len(items), 1))()
    for i, b in enumerate(items):
        arr[i] = b
    return arr


def array_arg(a: Any, what: str, dtypes: Sequence[Any], ndims: Sequence[int], dim: int | None = None) -> np.ndarray:
    """Checks an input array without copying it: a numpy array of one of dtypes
    (native byte order), ndim in ndims, C-contiguous and aligned, and (dim) the
    size of its last axis. ArgumentError names what is wrong."""
    if not isinstance(a, np.ndarray):
        raise ArgumentError(f"{what} must be a numpy array, not {type(a).__name__}")
    if not any(a.dtype == np.dtype(d) for d in dtypes):
        names = " or ".join(np.dtype(d).name for d in dtypes)
        raise ArgumentError(f"{what} has dtype {a.dtype}; expected {names} (convert with .astype)")
    if a.ndim not in ndims:
        shapes = " or ".join(f"{n}-D" for n in ndims)
        raise ArgumentError(f"{what} has shape {a.shape}; expected a {shapes} array")
    if not a.flags.c_contiguous or not a.flags.aligned:
        raise ArgumentError(f"{what} is not C-contiguous and aligned (use np.ascontiguousarray): the library reads "
                            "it in place")
    if dim is not None and a.shape[-1] != dim:
        raise ArgumentError(f"{what} has {a.shape[-1]} columns; expected {dim}")
    return a


def pointer(a: np.ndarray, ctype: Any):
    """A ctypes pointer to an array's data (the array must stay referenced during the call)."""
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def int_arg(value: Any, what: str, lo: int, hi: int) -> int:
    """An int in lo..hi (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ArgumentError(f"{what} must be an int, not {type(value).__name__}")
    if not lo <= int(value) <= hi:
        raise ArgumentError(f"{what} = {value} is out of range {lo}..{hi}")
    return int(value)


def choice(value: Any, what: str, names: dict) -> Any:
    """The value names maps value to; ArgumentError naming the choices."""
    if not isinstance(value, str) or value not in names:
        raise ArgumentError(f"{what} = {value!r}; expected one of {', '.join(repr(n) for n in names)}")
    return names[value]


PRECISIONS = {"fp32": _ffi.IMS_PRECISION_FP32, "tf32": _ffi.IMS_PRECISION_TF32, "fp16": _ffi.IMS_PRECISION_FP16}
MODES = {"torchvision": _ffi.IMS_PREPROCESS_TORCHVISION, "fid": _ffi.IMS_PREPROCESS_FID,
         "clean": _ffi.IMS_PREPROCESS_CLEAN}
MODE_NAMES = {v: k for k, v in MODES.items()}
DTYPES = {"f32": _ffi.IMS_DTYPE_F32, "f16": _ffi.IMS_DTYPE_F16}


def precision_arg(precision: Any) -> int:
    """"fp32", "tf32" or "fp16" -> an ims_precision, read by the library's own parser."""
    if not isinstance(precision, str):
        raise ArgumentError(f"precision must be 'fp32', 'tf32' or 'fp16', not {precision!r}")
    out = ctypes.c_int(0)
    err = _ffi.ims_error()
    st = _ffi.lib().ims_precision_parse(text_bytes(precision, "precision"), ctypes.byref(out), ctypes.byref(err))
    if st != _ffi.IMS_OK:
        raise ArgumentError(err.msg.decode("utf-8", "replace"))
    return out.value


def dtype_arg(dtype: Any, what: str = "dtype") -> int:
    """"f32"/"f16" (or numpy's float32/float16) -> an ims_dtype."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    try:
        d = np.dtype(dtype)
    except TypeError:
        d = None
    if d == np.float32:
        return _ffi.IMS_DTYPE_F32
    if d == np.float16:
        return _ffi.IMS_DTYPE_F16
    raise ArgumentError(f"{what} = {dtype!r}; expected 'f32' or 'f16'")


def new_error() -> _ffi.ims_error:
    return _ffi.ims_error()
