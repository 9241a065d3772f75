"""_errors.py: the library's statuses as Python exceptions.

Every failure of a C call raises the Error subclass of its ims_status, carrying
the status (`code`, `status`) and the library's one-line message. Arguments the
binding can check itself (dtypes, shapes, contiguity, closed objects) raise
before any C call: ArgumentError (also a ValueError and a TypeError, so that
either `except` catches it) and ClosedError.
"""
from __future__ import annotations

from . import _ffi


class Error(Exception):
    """A failure reported by the imgsearch library (or refused before calling it).

    code: the library's ims_status (an int, _ffi.IMS_ERR_*); status: its name
    ("format error", ...); message: the one-line reason.
    """

    code = _ffi.IMS_ERR_ARGUMENT

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    @property
    def status(self) -> str:
        return status_name(self.code)


class ArgumentError(Error, ValueError, TypeError):
    """An invalid argument: a wrong dtype, shape or value (IMS_ERR_ARGUMENT)."""
    code = _ffi.IMS_ERR_ARGUMENT


class ClosedError(ArgumentError):
    """The object was closed: its C resources are freed."""


class FileError(Error, OSError):
    """A file could not be opened, read, written or mapped (IMS_ERR_IO)."""
    code = _ffi.IMS_ERR_IO


class FormatError(Error):
    """A file is malformed (IMS_ERR_FORMAT)."""
    code = _ffi.IMS_ERR_FORMAT


class ChecksumError(FormatError):
    """A checksum does not match (IMS_ERR_CHECKSUM)."""
    code = _ffi.IMS_ERR_CHECKSUM


class OutOfMemoryError(Error, MemoryError):
    """A host or device allocation failed (IMS_ERR_NOMEM)."""
    code = _ffi.IMS_ERR_NOMEM


class UnsupportedError(Error):
    """Valid, but not supported by this build, device or version (IMS_ERR_UNSUPPORTED)."""
    code = _ffi.IMS_ERR_UNSUPPORTED


class NoDeviceError(Error):
    """No usable GPU (IMS_ERR_NO_DEVICE)."""
    code = _ffi.IMS_ERR_NO_DEVICE


class CudaError(Error):
    """A CUDA runtime, cuBLAS or cuDNN call failed (IMS_ERR_CUDA)."""
    code = _ffi.IMS_ERR_CUDA


class NotFoundError(Error, LookupError):
    """A named tensor, metadata key or file of an index is absent (IMS_ERR_NOT_FOUND)."""
    code = _ffi.IMS_ERR_NOT_FOUND


class BusyError(Error):
    """Another process holds it: an index's writer lock (IMS_ERR_BUSY); the message names the holder."""
    code = _ffi.IMS_ERR_BUSY


class ImageError(Error):
    """Images that could not be read or decoded.

    failures: [(index, path, reason)] for each, in input order; code: the
    first failure's status. From Index.search, failures name the queries
    (number, text or path, reason) and results holds the answers to all the
    queries (an empty one for each that failed).
    """

    def __init__(self, message: str, code: int, failures: list):
        super().__init__(message, code)
        self.failures = failures
        self.results = None


_BY_CODE = {cls.code: cls for cls in (ArgumentError, FileError, FormatError, ChecksumError, OutOfMemoryError,
                                      UnsupportedError, NoDeviceError, CudaError, NotFoundError, BusyError)}


def status_name(code: int) -> str:
    """The library's short name of a status ("format error", ...)."""
    return _ffi.lib().ims_status_name(code).decode()


def error(code: int, message: str) -> Error:
    """The exception for a status and message."""
    return _BY_CODE.get(code, Error)(message or status_name(code), code)


def check(status: int, err: _ffi.ims_error) -> None:
    """Raises the exception of a failed call (status != IMS_OK)."""
    if status != _ffi.IMS_OK:
        raise error(status, err.msg.decode("utf-8", "replace"))
