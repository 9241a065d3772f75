"""The package's surface: every public name documented (help() is useful),
the version, the library it loaded, devices."""
import inspect
import pydoc

import imgsearch


def test_every_public_name_is_documented():
    for name in imgsearch.__all__:
        obj = getattr(imgsearch, name)
        assert inspect.getdoc(obj), name
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and callable(member):
                    assert inspect.getdoc(member), f"{name}.{attr}"


def test_help_of_search_says_how_to_call_it():
    text = pydoc.render_doc(imgsearch.Index.search, renderer=pydoc.plaintext)
    for words in ("text", "image", "k rows", "Hit(row", "arrays=True", "table=\"semantic\""):
        assert words in text, words


def test_version_and_library():
    assert imgsearch.__version__ == "0.1.0"
    assert imgsearch.library_versions().startswith("imgsearch " + imgsearch.__version__)
    assert imgsearch.library_path().endswith(".so")
    assert isinstance(imgsearch.cuda_compiled(), bool) and imgsearch.cuda_device_count() >= 0


def test_devices():
    with imgsearch.Device("cpu") as d:
        info = d.info
        assert d.kind == "cpu" and d.name == "cpu" and info["threads"] >= 1 and "cpu" in repr(d)
    assert "closed" in repr(d)
    with imgsearch.Device("auto") as d:
        assert d.kind == ("cuda" if imgsearch.cuda_device_count() else "cpu")
