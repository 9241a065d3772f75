"""imgsearch: search image collections by text or by example image.

The Python face of the imgsearch C library (libimgsearch.so, through ctypes):
the same engine as the `imgsearch` command, numpy arrays in and out.

    import imgsearch
    imgsearch.index("photos/", "photos.idx", image_model="iv3.isw", text_model="minilm.isw")
    with imgsearch.Index("photos.idx") as idx:
        for hit in idx.search(text="a cat on a sofa", k=5):
            print(f"{hit.score:.3f} {hit.path}")

Models: ImageEncoder (Inception-v3: features, logits, classes), TextEncoder
(BERT sentence embeddings, WordPiece tokens). Search: knn() and Table (exact
k-NN over your own embeddings), Index, index() and compact() (the image index folder),
list_images() (the indexer's walk of a folder).
Scores: FidStats, fid(), kid(), inception_score() (as `imgsearch fid`).
Weight files: convert(), convert_synthetic(). Devices: Device ("auto",
"cpu", "cuda:N"), shared by the objects made on it.

Every failure raises an imgsearch.Error subclass carrying the library's
status (code) and message; bad arguments raise ArgumentError before any C
call. Objects free their C resources on close(), at the end of a `with`
block, or when garbage-collected. The GIL is released during library calls.
"""
from __future__ import annotations

import ctypes

from . import _ffi
from ._convert import ConvertReport, convert, convert_synthetic
from ._core import Device, cuda_compiled, cuda_device_count
from ._errors import (ArgumentError, BusyError, ChecksumError, ClosedError, CudaError, Error, FileError, FormatError,
                      ImageError, NoDeviceError, NotFoundError, OutOfMemoryError, UnsupportedError)
from ._fid import FidStats, fid, inception_score, kid
from ._index import (CompactReport, Hit, ImageList, Index, IndexReport, SyntheticWeightsWarning, compact, index,
                     list_images)
from ._knn import Table, knn
from ._models import ImageBatch, ImageEncoder, ImageRun, Prediction, TextEncoder, TokenBatch, decode_image

__version__ = "0.1.0"


def library_versions() -> str:
    """The versions of the library and of every library it links, one per line (for bug reports)."""
    buf = ctypes.create_string_buffer(4096)
    _ffi.lib().ims_library_versions(buf, len(buf))
    return buf.value.decode("utf-8", "replace")


def library_path() -> str:
    """The libimgsearch.so this package uses."""
    return _ffi.lib().path


__all__ = [
    "ArgumentError", "BusyError", "ChecksumError", "ClosedError", "CompactReport", "ConvertReport", "CudaError", "Device", "Error", "FileError",
    "FidStats", "FormatError", "Hit", "ImageBatch", "ImageList", "ImageEncoder", "ImageError", "ImageRun", "Index", "IndexReport",
    "NoDeviceError", "NotFoundError", "OutOfMemoryError", "Prediction", "SyntheticWeightsWarning", "Table",
    "TextEncoder", "TokenBatch", "UnsupportedError", "convert", "convert_synthetic", "cuda_compiled",
    "compact", "cuda_device_count", "decode_image", "fid", "inception_score", "index", "kid", "knn", "library_path", "library_versions", "list_images",
]
