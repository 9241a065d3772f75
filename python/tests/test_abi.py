"""The binding's view of the C API against include/imgsearch.h.

A C file includes the header, redeclares every prototype of
imgsearch._ffi.DECLARATIONS (a declaration that conflicts with the header's
is a compile error), and prints sizeof and _Alignof of every struct the
binding defines, the offset and size of each of its fields, the size of each
enum type and the value of each constant; ctypes must agree on every one.
"""
import ctypes
import os
import shutil
import subprocess

import pytest

from imgsearch import _ffi

from conftest import REPO


def c_program() -> str:
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "imgsearch.h"', '',
             '/* the binding\'s prototypes (python/imgsearch/_ffi.py), redeclared */',
             _ffi.DECLARATIONS, 'int main(void)', '{']
    for s in _ffi.STRUCTS:
        n = s.__name__
        lines.append(f'    printf("struct {n} %zu %zu\\n", sizeof({n}), (size_t)_Alignof({n}));')
        for field, _ in s._fields_:
            lines.append(f'    printf("field {n}.{field} %zu %zu\\n", offsetof({n}, {field}), '
                         f'sizeof((({n} *)0)->{field}));')
    for e in _ffi.ENUM_TYPES:
        lines.append(f'    printf("enum {e} %zu\\n", sizeof({e}));')
    for name in _ffi.CONSTANTS:
        lines.append(f'    printf("const {name} %lld\\n", (long long)({name}));')
    lines += ['    return 0;', '}', '']
    return "\n".join(lines)


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler to check the layouts with")
    d = tmp_path_factory.mktemp("abi")
    src, exe = d / "abi.c", d / "abi"
    src.write_text(c_program())
    p = subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-I", str(REPO / "include"), str(src), "-o", str(exe)],
                       capture_output=True, text=True)
    assert p.returncode == 0, "the binding's declarations disagree with imgsearch.h:\n" + p.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {" ".join(line.split()[:2]): [int(x) for x in line.split()[2:]] for line in out.splitlines()}


def test_prototypes_match_the_header(c_layout):
    """Compiling the redeclarations is the check; every declared function is also exported."""
    lib = _ffi.lib()
    for name, _, _ in _ffi.parse_declarations():
        assert hasattr(lib, name)


@pytest.mark.parametrize("struct", _ffi.STRUCTS, ids=lambda s: s.__name__)
def test_struct_layout(c_layout, struct):
    n = struct.__name__
    assert c_layout[f"struct {n}"] == [ctypes.sizeof(struct), ctypes.alignment(struct)], n
    for field, _ in struct._fields_:
        f = getattr(struct, field)
        assert c_layout[f"field {n}.{field}"] == [f.offset, f.size], f"{n}.{field}"


def test_enums_are_ints(c_layout):
    for e in _ffi.ENUM_TYPES:
        assert c_layout[f"enum {e}"] == [ctypes.sizeof(ctypes.c_int)], e


def test_constants(c_layout):
    for name, value in _ffi.CONSTANTS.items():
        assert c_layout[f"const {name}"] == [value], name


def test_parser_reads_every_kind_of_type():
    t = _ffi._ctype
    assert t("const char *const *") is ctypes.POINTER(ctypes.c_char_p)
    assert t("const char *") is ctypes.c_char_p
    assert t("void *") is ctypes.c_void_p
    assert t("ims_knn_table **") is ctypes.POINTER(ctypes.POINTER(_ffi.ims_knn_table))
    assert t("ims_status") is ctypes.c_int
    assert t("void") is None
    with pytest.raises(TypeError):
        t("struct unknown *")
