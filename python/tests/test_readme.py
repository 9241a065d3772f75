"""README.md's Python example runs as written: in a folder holding photos/,
iv3.isw and minilm.isw (here the synthetic Inception-v3 and the tiny BERT
fixture under the README's names), the five lines index the photos and print
the hits."""
import os
import re
import shutil
import subprocess
import sys

from conftest import REPO


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Python\n"):]
    m = re.search(r"((?:^    .*\n)*^    import imgsearch\n(?:^    .*\n)+)", section, re.M)
    lines = [line[4:] for line in m.group(1).splitlines()]
    return "\n".join(lines[lines.index("import imgsearch"):]) + "\n"


def test_readme_install_line():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "\n    pip install ./python" in text[text.index("\n## Python\n"):]
    # the top still gives exactly the two commands for a fresh machine
    top = text[:text.index("\n## ")]
    assert re.findall(r"^    (make \w+)", top, re.M) == ["make demo", "make test"]


def test_readme_example_runs_as_written(tmp_path, iv3, tiny_bert, photos):
    code = readme_example()
    assert len(code.strip().splitlines()) == 5, code
    shutil.copytree(photos, tmp_path / "photos")
    os.symlink(iv3, tmp_path / "iv3.isw")
    shutil.copy(tiny_bert, tmp_path / "minilm.isw")
    p = subprocess.run([sys.executable, "-X", "faulthandler", "-W", "ignore", "-c", code], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 3  # the folder's 3 good images (k=5)
    for line in lines:
        score, path = line.split(None, 1)
        assert -1 <= float(score) <= 1 and os.path.isfile(tmp_path / path)
