"""_convert.py: checkpoints to weight files (the library's converter, as `imgsearch convert`)."""
from __future__ import annotations

import ctypes
import dataclasses
from typing import Optional

from . import _ffi
from ._core import PathLike, dtype_arg, fs_path, new_error, text_bytes
from ._errors import ArgumentError, check


@dataclasses.dataclass
class ConvertReport:
    """What a conversion did: the architecture, the input's format ("PyTorch
    zip", "PyTorch legacy", "safetensors"; "synthetic"), tensors read,
    written and not used by inference, and the bytes written."""
    arch: str
    format: str
    tensors_in: int
    tensors_out: int
    tensors_ignored: int
    bytes_out: int


def _options(arch: str, dtype: str, transform_input: Optional[bool], labels: Optional[PathLike]):
    lib = _ffi.lib()
    o = _ffi.ims_convert_options()
    lib.ims_convert_options_init(ctypes.byref(o))
    a = ctypes.c_int(0)
    err = new_error()
    if lib.ims_convert_arch_parse(text_bytes(arch, "arch"), ctypes.byref(a), ctypes.byref(err)) != _ffi.IMS_OK:
        raise ArgumentError(err.msg.decode("utf-8", "replace"))
    o.arch = a.value
    o.dtype = dtype_arg(dtype)
    if transform_input is not None:
        if not isinstance(transform_input, bool):
            raise ArgumentError(f"transform_input must be True, False or None, not {transform_input!r}")
        o.transform_input = int(transform_input)
    keep = []
    if labels is not None:
        keep.append(fs_path(labels, "labels"))
        o.labels_path = keep[-1]
    return o, keep


def _report(r: _ffi.ims_convert_report, fmt: Optional[str] = None) -> ConvertReport:
    name = _ffi.lib().ims_convert_arch_name(r.arch).decode()
    return ConvertReport(name, fmt or (r.format or b"").decode(), r.tensors_in, r.tensors_out, r.tensors_ignored,
                         r.bytes_out)


def convert(src: PathLike, dst: PathLike, *, arch: str = "auto", dtype: str = "f32",
            transform_input: Optional[bool] = None, labels: Optional[PathLike] = None) -> ConvertReport:
    """Converts a checkpoint to an imgsearch weight file without running any of
    its code, as `imgsearch convert SRC -o DST` (the same bytes).

    src: a torch.save file (zip or legacy .pth), a .safetensors file, or a
    Hugging Face / sentence-transformers model folder (BERT). arch: "auto"
    (from the keys), "inception_v3", "inception_v3_fid" or "bert". dtype: the
    weight matrices' storage, "f32" or "f16". transform_input (Inception):
    None for the variant's default, True or False. labels (Inception): a file
    of class names, one per line (default ImageNet's 1000). DST is written
    crash-safely.
    """
    o, keep = _options(arch, dtype, transform_input, labels)
    src_bytes, dst_bytes = fs_path(src, "src"), fs_path(dst, "dst")
    # metadata "source": what follows the input's last '/' (all of it if nothing does), as the command records it
    slash = src_bytes.rfind(b"/")
    source = src_bytes[slash + 1:] if 0 <= slash < len(src_bytes) - 1 else src_bytes
    o.source = source
    report = _ffi.ims_convert_report()
    err = new_error()
    check(_ffi.lib().ims_convert(src_bytes, dst_bytes, ctypes.byref(o), ctypes.byref(report), ctypes.byref(err)), err)
    return _report(report)


def convert_synthetic(dst: PathLike, *, arch: str = "inception_v3") -> ConvertReport:
    """A full-size Inception-v3 weight file with synthetic weights (a
    documented generator), as `imgsearch convert --synthetic -o DST`: for
    tests and benchmarks where the published checkpoint cannot be fetched.
    Results made with it are not meaningful (the file says so)."""
    o, keep = _options(arch, "f32", None, None)
    if o.arch == _ffi.IMS_CONVERT_ARCH_AUTO:
        o.arch = _ffi.IMS_CONVERT_ARCH_INCEPTION_V3
    report = _ffi.ims_convert_report()
    err = new_error()
    check(_ffi.lib().ims_convert_synthetic(o.arch, fs_path(dst, "dst"), ctypes.byref(o), ctypes.byref(report),
                                           ctypes.byref(err)), err)
    return _report(report, "synthetic")
