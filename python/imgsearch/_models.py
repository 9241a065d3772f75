"""_models.py: the image encoder (Inception-v3), the text encoder (BERT
sentence embeddings and its WordPiece tokenizer), and image decoding.

Outputs are numpy arrays the package allocates and the library writes into
(no copy); inputs are read in place where their layout allows (uint8 crops,
float NHWC input, decoded images given to the preprocessing). Image files go
through the library's batch loop (ims_image_encoder_run: decode threads
filling the next batches while the model runs), the same loop as
`imgsearch embed-image` and `imgsearch classify`, so the numbers are the
command's, bit for bit.
"""
from __future__ import annotations

import ctypes
import math
import os
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _ffi
from ._core import (MODE_NAMES, MODES, Device, Handle, OnDevice, PathLike, array_arg, choice, fs_path, int_arg,
                    new_error, pointer, precision_arg, string_array, text_bytes)
from ._errors import ArgumentError, ImageError, check, error

_WHAT = {"features": "features", "logits": "logits", "both": "both"}
_INPUT = _ffi.IMS_IMAGE_INPUT_SIZE  # 299


def _default_threads() -> int:
    """Decode threads: the CPU count, at most 8 (as the command line)."""
    return max(1, min(os.cpu_count() or 1, 8))


def _open_weights(path: PathLike):
    w = ctypes.POINTER(_ffi.ims_weights)()
    err = new_error()
    check(_ffi.lib().ims_weights_open(fs_path(path, "model path"), 0, ctypes.byref(w), ctypes.byref(err)), err)
    return w


def _weights_synthetic(w) -> bool:
    v = ctypes.c_int64(0)
    return _ffi.lib().ims_weights_get_i64(w, b"synthetic", ctypes.byref(v), None) == _ffi.IMS_OK and v.value != 0


# ---- Images --------------------------------------------------------------------------


def decode_image(source: Union[PathLike, bytes, bytearray, memoryview], *, exif: bool = True,
                 max_pixels: Optional[int] = None) -> np.ndarray:
    """Decodes a JPEG or PNG to RGB: source is a path (str or os.PathLike) or
    the file's contents (bytes, bytearray, memoryview).

    Returns a (height, width, 3) uint8 array, as the library's image pipeline
    sees the file: every color type converted as Pillow's convert('RGB'), EXIF
    orientation applied unless exif=False, at most max_pixels pixels (default
    100,000,000). Bad input raises FormatError or UnsupportedError.
    """
    lib = _ffi.lib()
    opts = _ffi.ims_decode_options()
    lib.ims_decode_options_init(ctypes.byref(opts))
    opts.apply_exif_orientation = 1 if exif else 0
    if max_pixels is not None:
        opts.max_pixels = int_arg(max_pixels, "max_pixels", 1, 2**63 - 1)
    img = _ffi.ims_image()
    err = new_error()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        st = lib.ims_image_decode(data, len(data), ctypes.byref(opts), ctypes.byref(img), ctypes.byref(err))
    else:
        if not isinstance(source, (str, os.PathLike)):
            raise ArgumentError(f"source must be a path or bytes, not {type(source).__name__}")
        st = lib.ims_image_decode_file(fs_path(source, "image path"), ctypes.byref(opts), ctypes.byref(img),
                                       ctypes.byref(err))
    check(st, err)
    try:
        out = np.empty((img.height, img.width, 3), np.uint8)
        ctypes.memmove(out.ctypes.data, img.pixels, out.nbytes)
    finally:
        lib.ims_image_free(ctypes.byref(img))
    return out


class ImageBatch(NamedTuple):
    """One batch of ImageEncoder.run: images [first, first + count) of the list.

    features (count, feature_dim) and logits (count, num_classes) float32, or
    None when not asked for; a failed image's rows are NaN. failures:
    [(index, path, reason)] of the images that could not be read.
    """
    first: int
    count: int
    features: Optional[np.ndarray]
    logits: Optional[np.ndarray]
    failures: List[Tuple[int, str, str]]


class Prediction(NamedTuple):
    """A class of ImageEncoder.classify: its index, label and softmax probability."""
    index: int
    label: str
    probability: float


class ImageRun(Handle):
    """An iterator over the batches of image files run through an encoder
    (ImageEncoder.run). Closing it (or the encoder) stops the decode threads."""

    def __init__(self, encoder: "ImageEncoder", paths: Sequence[PathLike], what: str, mode: Optional[str],
                 batch_size: int, threads: Optional[int]):
        super().__init__(encoder._lock)
        self._run = None
        self._done = False
        self._paths = [fs_path(p, "image path") for p in paths]  # kept alive: the run reads them
        self._c_paths = string_array(self._paths)
        self._what = choice(what, "what", _WHAT)
        self._encoder = encoder
        opts = _ffi.ims_image_encoder_run_options()
        lib = _ffi.lib()
        lib.ims_image_encoder_run_options_init(ctypes.byref(opts))
        opts.mode = -1 if mode is None else choice(mode, "mode", MODES)
        opts.batch_size = int_arg(batch_size, "batch_size", 1, 65536)
        opts.threads = int_arg(_default_threads() if threads is None else threads, "threads", 1, 256)
        run = ctypes.POINTER(_ffi.ims_image_encoder_run)()
        err = new_error()
        with encoder._use():
            check(lib.ims_image_encoder_run_start(encoder._enc, encoder.device.ptr, self._c_paths, len(self._paths),
                                                  ctypes.byref(opts), ctypes.byref(run), ctypes.byref(err)), err)
            self._run = run
            encoder._children.add(self)

    def _free(self) -> None:
        if self._run:
            _ffi.lib().ims_image_encoder_run_free(self._run)
        self._run = None

    def __iter__(self) -> "ImageRun":
        return self

    def _next_raw(self):
        """The next C batch (valid until the next call), or None after the last."""
        batch = ctypes.POINTER(_ffi.ims_image_encoder_batch)()
        err = new_error()
        st = _ffi.lib().ims_image_encoder_run_next(self._run, ctypes.byref(batch), ctypes.byref(err))
        if st == _ffi.IMS_ERR_NOT_FOUND:
            return None
        check(st, err)
        return batch.contents

    def __next__(self) -> ImageBatch:
        if self._done:
            raise StopIteration
        with self._use():
            try:
                b = self._next_raw()
            except BaseException:
                self.close()
                raise
            if b is None:
                self._done = True
                self.close()
                raise StopIteration
            n, first = b.count, b.first
            failures = _failures(b)
            features = logits = None
            if self._what in ("features", "both"):
                features = _rows(b.features, n, self._encoder.feature_dim).copy()
            if self._what in ("logits", "both"):
                logits = _rows(b.logits, n, self._encoder.num_classes).copy()
            for i, _, _ in failures:
                for a in (features, logits):
                    if a is not None:
                        a[i - first] = np.nan
            return ImageBatch(first, n, features, logits, failures)


def _rows(ptr, n: int, dim: int) -> np.ndarray:
    """A view of (n, dim) floats the library owns (copy before its next call)."""
    return np.ctypeslib.as_array(ptr, shape=(n, dim)) if n else np.empty((0, dim), np.float32)


def _failures(b) -> List[Tuple[int, str, str]]:
    out = []
    if b.failed:
        for j in range(b.count):
            item = b.items[j]
            if item.status != _ffi.IMS_OK:
                out.append((b.first + j, os.fsdecode(item.path), item.reason.decode("utf-8", "replace")))
    return out


def _image_error(failures: list, status: int) -> ImageError:
    first = failures[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return ImageError(f"{first[1]}: {first[2]}{more}", status, failures)


class ImageEncoder(OnDevice):
    """Inception-v3 (torchvision's, or pytorch-fid's FID Inception) from a
    weight file (`imgsearch convert`).

        enc = imgsearch.ImageEncoder("iv3.isw")            # device="auto": a GPU if usable
        feats = enc.embed(["a.jpg", "b.png"])              # (2, 2048) float32
        logits = enc.embed(images, what="logits")          # uint8 (H, W, 3) arrays too
        enc.classify("cat.jpg", k=5)                       # [Prediction(index, label, probability)]

    device: "auto", "cpu", "cuda", "cuda:N" or a Device. precision: "fp32"
    (default, as `imgsearch embed-image`), "tf32" or "fp16" (GPU only).
    Threads may share an encoder: their calls run one at a time.
    """

    def __init__(self, path: PathLike, device: Union[str, Device] = "auto", precision: str = "fp32"):
        self._enc = None
        super().__init__(device)
        try:
            p = precision_arg(precision)
            lib = _ffi.lib()
            w = _open_weights(path)
            try:
                self.synthetic = _weights_synthetic(w)
                enc = ctypes.POINTER(_ffi.ims_image_encoder)()
                err = new_error()
                with self._use():
                    check(lib.ims_image_encoder_create(self.device.ptr, w, p, ctypes.byref(enc), ctypes.byref(err)),
                          err)
                self._enc = enc
            finally:
                lib.ims_weights_close(w)  # the encoder keeps its own copies
            self.path = os.fspath(path)
            self.precision = precision
            self.feature_dim = lib.ims_image_encoder_feature_dim(enc)
            self.num_classes = lib.ims_image_encoder_num_classes(enc)
            self.mode = MODE_NAMES[lib.ims_image_encoder_mode(enc)]
            self._labels: Optional[List[str]] = None
        except BaseException:
            self.close()
            raise

    def _free_handle(self) -> None:
        if self._enc:
            _ffi.lib().ims_image_encoder_free(self._enc)
        self._enc = None

    def __repr__(self) -> str:
        if self.closed:
            return "<imgsearch.ImageEncoder closed>"
        return (f"<imgsearch.ImageEncoder {self.path!r} on {self.device.name}, {self.mode} mode, "
                f"{self.feature_dim} features, {self.num_classes} classes{', synthetic' if self.synthetic else ''}>")

    @property
    def labels(self) -> List[str]:
        """The class names the weight file holds ("" for a class without one)."""
        if self._labels is None:
            lib = _ffi.lib()
            with self._use():
                out = []
                for i in range(self.num_classes):
                    s = lib.ims_image_encoder_label(self._enc, i)
                    out.append(ctypes.string_at(s.ptr, s.len).decode("utf-8", "replace") if s.ptr else "")
            self._labels = out
        return self._labels

    # -- image files, through the library's batch loop --

    def run(self, paths: Sequence[PathLike], what: str = "features", mode: Optional[str] = None,
            batch_size: int = 32, threads: Optional[int] = None) -> ImageRun:
        """Runs image files through the model batch by batch: an iterator of
        ImageBatch (first, count, features, logits, failures), the decode
        threads reading the next batches while the model runs. A file that
        cannot be read is reported in its batch's failures (its rows are NaN)
        and never stops the run.

        what: "features" (2048-d pool features), "logits" or "both". mode:
        "torchvision" (resize 342, center crop 299), "fid" (bilinear 299 x
        299) or "clean" (clean-fid's bicubic 299 x 299); default: the
        model's. threads: decode threads (default: the CPU
        count, at most 8).
        """
        if isinstance(paths, (str, bytes, os.PathLike)):
            paths = [paths]
        return ImageRun(self, list(paths), what, mode, batch_size, threads)

    def embed(self, images, what: str = "features", mode: Optional[str] = None, batch_size: int = 32,
              threads: Optional[int] = None, errors: str = "raise"):
        """Inception-v3 outputs of images.

        images: a path, a list of paths (image files: JPEG, PNG), or decoded
        RGB images: a uint8 array (H, W, 3), a list of such arrays, or a uint8
        array (N, H, W, 3). Arrays are preprocessed exactly as files are
        (torchvision: Pillow's antialiased resize of the short side to 342, the
        299 x 299 center crop; fid: bilinear to 299 x 299). To give the
        network's input as it is, use forward().

        what: "features" -> float32 (N, feature_dim) (2048: the pool features,
        the FID feature); "logits" -> float32 (N, num_classes); "both" -> the
        pair. A single path or a 3-D array gives 1-D results.

        errors: "raise" (default) raises ImageError listing every file that
        could not be read (after running the others); "nan" fills their rows
        with NaN instead.
        """
        what = choice(what, "what", _WHAT)
        choice(errors, "errors", {"raise": 0, "nan": 1})
        single, kind, items = _image_inputs(images)
        if kind == "paths":
            feats, logits = self._embed_paths(items, what, mode, batch_size, threads, errors)
        else:
            feats, logits = self._embed_arrays(items, what, mode, batch_size)
        if single:
            feats = feats[0] if feats is not None else None
            logits = logits[0] if logits is not None else None
        return (feats, logits) if what == "both" else feats if what == "features" else logits

    def _outputs(self, n: int, what: str):
        feats = np.empty((n, self.feature_dim), np.float32) if what in ("features", "both") else None
        logits = np.empty((n, self.num_classes), np.float32) if what in ("logits", "both") else None
        return feats, logits

    def _embed_paths(self, paths, what, mode, batch_size, threads, errors):
        feats, logits = self._outputs(len(paths), what)
        failures, status = [], _ffi.IMS_OK
        run = ImageRun(self, paths, what, mode, batch_size, threads)
        try:
            while True:
                with run._use():
                    b = run._next_raw()
                    if b is None:
                        break
                    s = slice(b.first, b.first + b.count)
                    if feats is not None:
                        feats[s] = _rows(b.features, b.count, self.feature_dim)
                    if logits is not None:
                        logits[s] = _rows(b.logits, b.count, self.num_classes)
                    if b.failed and status == _ffi.IMS_OK:
                        status = next(b.items[j].status for j in range(b.count) if b.items[j].status)
                    failures += _failures(b)
        finally:
            run.close()
        for i, _, _ in failures:
            for a in (feats, logits):
                if a is not None:
                    a[i] = np.nan
        if failures and errors == "raise":
            raise _image_error(failures, status)
        return feats, logits

    def _embed_arrays(self, images, what, mode, batch_size):
        mode_value = MODES[self.mode] if mode is None else choice(mode, "mode", MODES)
        batch_size = int_arg(batch_size, "batch_size", 1, 65536)
        n = len(images)
        feats, logits = self._outputs(n, what)
        float_preprocess = {_ffi.IMS_PREPROCESS_FID: "ims_preprocess_fid",
                  _ffi.IMS_PREPROCESS_CLEAN: "ims_preprocess_clean"}.get(mode_value)
        crops = np.empty((min(n, batch_size), _INPUT, _INPUT, 3), np.float32 if float_preprocess else np.uint8)
        lib = _ffi.lib()
        err = new_error()
        for start in range(0, n, batch_size):
            count = min(batch_size, n - start)
            for j in range(count):
                img = images[start + j]
                h, w = img.shape[0], img.shape[1]
                c_img = _ffi.ims_image(w, h, pointer(img, ctypes.c_uint8))
                if float_preprocess:
                    st = getattr(lib, float_preprocess)(ctypes.byref(c_img), _INPUT, _ffi.IMS_LAYOUT_NHWC,
                                              pointer(crops[j], ctypes.c_float), ctypes.byref(err))
                else:
                    st = lib.ims_preprocess_torchvision_u8(ctypes.byref(c_img), _ffi.IMS_IMAGE_RESIZE_SIZE, _INPUT,
                                                           pointer(crops[j], ctypes.c_uint8), ctypes.byref(err))
                if st != _ffi.IMS_OK:
                    raise error(st, f"image {start + j}: {err.msg.decode('utf-8', 'replace')}")
            self._forward(crops[:count], feats[start:start + count] if feats is not None else None,
                          logits[start:start + count] if logits is not None else None)
        return feats, logits

    # -- the network's input, as it is --

    def forward(self, crops: np.ndarray, what: str = "features", batch_size: int = 32):
        """The model on its input as given, read in place: crops (N, 299, 299, 3)
        uint8 RGB (torchvision mode: normalized inside with the file's mean and
        std) or float32 already normalized (NHWC; fid mode's input is 2x - 1).
        what: "features", "logits" or "both", as embed()."""
        what = choice(what, "what", _WHAT)
        crops = array_arg(crops, "crops", (np.uint8, np.float32), (4,))
        if crops.shape[1:] != (_INPUT, _INPUT, 3):
            raise ArgumentError(f"crops has shape {crops.shape}; expected (N, {_INPUT}, {_INPUT}, 3)")
        batch_size = int_arg(batch_size, "batch_size", 1, 65536)
        feats, logits = self._outputs(crops.shape[0], what)
        for start in range(0, crops.shape[0], batch_size):
            s = slice(start, start + batch_size)
            self._forward(crops[s], feats[s] if feats is not None else None, logits[s] if logits is not None else None)
        return (feats, logits) if what == "both" else feats if what == "features" else logits

    def _forward(self, crops: np.ndarray, feats: Optional[np.ndarray], logits: Optional[np.ndarray]) -> None:
        lib = _ffi.lib()
        err = new_error()
        f = pointer(feats, ctypes.c_float) if feats is not None else None
        y = pointer(logits, ctypes.c_float) if logits is not None else None
        with self._use():
            if crops.dtype == np.uint8:
                st = lib.ims_image_encoder_forward(self._enc, pointer(crops, ctypes.c_uint8), crops.shape[0], f, y,
                                                   ctypes.byref(err))
            else:
                st = lib.ims_image_encoder_forward_f32(self._enc, pointer(crops, ctypes.c_float), crops.shape[0], f,
                                                       y, ctypes.byref(err))
        check(st, err)

    # -- classes --

    def classify(self, images, k: int = 5, mode: Optional[str] = None, batch_size: int = 32,
                 threads: Optional[int] = None, errors: str = "raise"):
        """The k most probable classes of each image, as `imgsearch classify`:
        a list per image of Prediction(index, label, probability), best first,
        equal probabilities by lower class index (softmax over the logits in
        double precision). images as embed(); a single image gives one list.
        With errors="nan" an image that cannot be read gets an empty list."""
        k = int_arg(k, "k", 1, 100000)
        single, _, _ = _image_inputs(images)
        logits = self.embed(images, what="logits", mode=mode, batch_size=batch_size, threads=threads, errors=errors)
        logits = logits[None] if single else logits
        labels = self.labels
        out = []
        for row in logits:
            if np.isnan(row).any():
                out.append([])
                continue
            probs = _softmax(row)
            top = np.argsort(-probs, kind="stable")[:min(k, len(probs))]
            out.append([Prediction(int(c), labels[c], float(probs[c])) for c in top])
        return out[0] if single else out


def _softmax(logits: np.ndarray) -> np.ndarray:
    """softmax in double, summed in class order with libm's exp: the same
    arithmetic as `imgsearch classify`, so the probabilities are its bits."""
    x = logits.astype(np.float64)
    mx = float(x.max())
    e = np.array([math.exp(v - mx) for v in x.tolist()])
    total = float(np.add.accumulate(e)[-1])  # sequential, in class order
    return e / total


def _image_inputs(images):
    """(single, "paths" | "arrays", items): the images embed() was given, checked."""
    if isinstance(images, (str, bytes, os.PathLike)):
        return True, "paths", [images]
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            return True, "arrays", [_image_array(images, "image")]
        if images.ndim == 4:
            a = array_arg(images, "images", (np.uint8,), (4,))
            return False, "arrays", [_image_array(a[i], f"images[{i}]") for i in range(a.shape[0])]
        raise ArgumentError(f"images has shape {images.shape}; expected (H, W, 3) or (N, H, W, 3) uint8")
    if not isinstance(images, Sequence):
        raise ArgumentError(f"images must be a path, a list of paths or uint8 arrays, not {type(images).__name__}")
    items = list(images)
    if all(isinstance(x, np.ndarray) for x in items) and items:
        return False, "arrays", [_image_array(x, f"images[{i}]") for i, x in enumerate(items)]
    for i, x in enumerate(items):
        if not isinstance(x, (str, bytes, os.PathLike)):
            raise ArgumentError(f"images[{i}] is a {type(x).__name__}; give all paths or all uint8 (H, W, 3) arrays")
    return False, "paths", items


def _image_array(a, what: str) -> np.ndarray:
    a = array_arg(a, what, (np.uint8,), (3,))
    if a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1 or max(a.shape[:2]) > 2**31 - 1:
        raise ArgumentError(f"{what} has shape {a.shape}; expected (H, W, 3) RGB")
    return a


# ---- Text ------------------------------------------------------------------------------


class TokenBatch(NamedTuple):
    """Token ids of a batch of texts: ids (N, T) int32 ([CLS] ... [SEP], padded
    with [PAD] to the longest), lengths (N,) int32 (each text's token count)."""
    ids: np.ndarray
    lengths: np.ndarray


class TextEncoder(OnDevice):
    """A BERT sentence encoder (all-MiniLM-L6-v2, converted by `imgsearch
    convert`) and its WordPiece tokenizer.

        te = imgsearch.TextEncoder("minilm.isw")
        e = te.embed(["a cat on a sofa", "a dog"])     # (2, 384) float32, L2-normalized
        te.tokenize("a cat")                           # int32 ids, as Hugging Face's tokenizers

    precision: "fp32" or "fp16" (GPU only); default as `imgsearch
    embed-text`: fp16 on a GPU, fp32 on the CPU.
    """

    def __init__(self, path: PathLike, device: Union[str, Device] = "auto", precision: Optional[str] = None):
        self._emb = self._tok = None
        super().__init__(device)
        try:
            if precision is None:
                precision = "fp16" if self.device.kind == "cuda" else "fp32"
            p = precision_arg(precision)
            lib = _ffi.lib()
            w = _open_weights(path)
            try:
                emb = ctypes.POINTER(_ffi.ims_text_embedder)()
                tok = ctypes.POINTER(_ffi.ims_tokenizer)()
                err = new_error()
                with self._use():
                    check(lib.ims_text_embedder_create(self.device.ptr, w, p, ctypes.byref(emb), ctypes.byref(err)),
                          err)
                    self._emb = emb
                    check(lib.ims_tokenizer_create_from_weights(w, ctypes.byref(tok), ctypes.byref(err)), err)
                    self._tok = tok
            finally:
                lib.ims_weights_close(w)  # the encoder and tokenizer keep their own copies
            self.path = os.fspath(path)
            self.precision = precision
            self.dim = lib.ims_text_embedder_dim(emb)
            self.max_len = lib.ims_tokenizer_max_len(tok)
            self.vocab_size = lib.ims_tokenizer_vocab_size(tok)
        except BaseException:
            self.close()
            raise

    def _free_handle(self) -> None:
        lib = _ffi.lib()
        if self._emb:
            lib.ims_text_embedder_free(self._emb)
        if self._tok:
            lib.ims_tokenizer_free(self._tok)
        self._emb = self._tok = None

    def __repr__(self) -> str:
        if self.closed:
            return "<imgsearch.TextEncoder closed>"
        return f"<imgsearch.TextEncoder {self.path!r} on {self.device.name}, dim {self.dim}>"

    def embed(self, texts: Union[str, bytes, Sequence[Union[str, bytes]]]) -> np.ndarray:
        """Sentence embeddings: float32 (N, dim) for a list of texts (str, or
        UTF-8 bytes), (dim,) for one text; as `imgsearch embed-text`. A text's
        embedding does not depend on the others. Texts may not contain NUL."""
        single = isinstance(texts, (str, bytes))
        items = [texts] if single else _text_list(texts)
        data = [text_bytes(t, f"texts[{i}]") for i, t in enumerate(items)]
        out = np.empty((len(data), self.dim), np.float32)
        if data:
            err = new_error()
            arr = string_array(data)
            with self._use():
                st = _ffi.lib().ims_text_embed(self._emb, arr, len(data), pointer(out, ctypes.c_float),
                                               ctypes.byref(err))
            check(st, err)
        return out[0] if single else out

    def tokenize(self, texts: Union[str, bytes, Sequence[Union[str, bytes]]], max_len: Optional[int] = None):
        """WordPiece ids, id for id as Hugging Face's tokenizers: for one text
        an int32 array of its ids ([CLS] ... [SEP]); for a list a TokenBatch
        (ids (N, T) padded with [PAD], lengths (N,)). max_len: truncation,
        [CLS] and [SEP] included (default: the model's)."""
        single = isinstance(texts, (str, bytes))
        items = [texts] if single else _text_list(texts)
        max_len = self.max_len if max_len is None else int_arg(max_len, "max_len", 2, 1 << 20)
        data = [text_bytes(t, f"texts[{i}]", nul_ok=True) for i, t in enumerate(items)]
        n = len(data)
        ids = np.empty(max(n, 1) * max_len, np.int32)
        lengths = np.zeros(n, np.int32)
        lens = (ctypes.c_size_t * max(n, 1))(*[len(b) for b in data])
        seq_len = ctypes.c_int(0)
        err = new_error()
        arr = string_array(data)
        with self._use():
            st = _ffi.lib().ims_tokenizer_encode_batch(self._tok, arr, lens, n, max_len, pointer(ids, ctypes.c_int32),
                                                       pointer(lengths, ctypes.c_int32), ctypes.byref(seq_len),
                                                       ctypes.byref(err))
        check(st, err)
        t = seq_len.value
        batch = ids[:n * t].reshape(n, t)
        if single:
            return batch[0, :lengths[0]].copy()
        return TokenBatch(batch.copy() if t < max_len else batch, lengths)

    def token_strings(self, ids) -> List[str]:
        """The token strings of ids (as `imgsearch tokenize --tokens`)."""
        lib = _ffi.lib()
        out = []
        with self._use():
            for i in np.asarray(ids).ravel().tolist():
                s = lib.ims_tokenizer_decode_token(self._tok, int(i)) if -2**31 <= i < 2**31 else None
                if s is None:
                    raise ArgumentError(f"token id {i} is out of range 0..{self.vocab_size - 1}")
                out.append(s.decode("utf-8", "replace"))
        return out


def _text_list(texts) -> list:
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if not isinstance(texts, Sequence):
        raise ArgumentError(f"texts must be a str or a list of str, not {type(texts).__name__}")
    return list(texts)
