"""convert() and convert_synthetic() write the bytes `imgsearch convert` writes."""
import filecmp

import pytest

import imgsearch

from conftest import FIXTURES


def test_convert_as_the_command(cli, work, tiny_bert):
    cli("convert", FIXTURES / "hf_tiny_bert", "-o", work / "cli_text.isw")
    assert filecmp.cmp(tiny_bert, work / "cli_text.isw", shallow=False)
    r = imgsearch.convert(FIXTURES / "hf_tiny_bert", work / "text_f16.isw", dtype="f16", arch="bert")
    assert r.arch == "bert" and r.format == "safetensors" and r.tensors_out > 0 and r.bytes_out > 0
    cli("convert", FIXTURES / "hf_tiny_bert", "-o", work / "cli_text_f16.isw", "--dtype", "f16", "--arch", "bert")
    assert filecmp.cmp(work / "text_f16.isw", work / "cli_text_f16.isw", shallow=False)


def test_inception_checkpoint_as_the_command(cli, work):
    src = FIXTURES / "inception" / "tv_zip.pt"  # a small torchvision-keyed checkpoint (every width / 16)
    r = imgsearch.convert(src, work / "small_iv3.isw", transform_input=False)
    cli("convert", src, "-o", work / "cli_small_iv3.isw", "--no-transform-input")
    assert r.arch == "inception_v3" and r.format == "PyTorch zip"
    assert filecmp.cmp(work / "small_iv3.isw", work / "cli_small_iv3.isw", shallow=False)


def test_synthetic_as_the_command(cli, work, iv3):
    cli("convert", "--synthetic", "-o", work / "cli_iv3.isw")
    assert filecmp.cmp(iv3, work / "cli_iv3.isw", shallow=False)


def test_convert_errors(work):
    with pytest.raises(imgsearch.FileError):
        imgsearch.convert(work / "absent.pth", work / "x.isw")
    with pytest.raises(imgsearch.FormatError):
        imgsearch.convert(FIXTURES / "tokenizer" / "corpus.txt", work / "x.isw")
    with pytest.raises(imgsearch.ArgumentError):
        imgsearch.convert(FIXTURES / "hf_tiny_bert", work / "x.isw", arch="resnet")
    with pytest.raises(imgsearch.ArgumentError):
        imgsearch.convert(FIXTURES / "hf_tiny_bert", work / "x.isw", dtype="f64")
    with pytest.raises(imgsearch.Error):
        imgsearch.convert_synthetic(work / "x.isw", arch="bert")
