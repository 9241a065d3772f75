#!/usr/bin/env bash
# test_cli_embed_text.sh: `imgsearch embed-text` end to end (tokenizer + text
# encoder): the .npy and JSON outputs agree, rows are unit-norm, a text's
# vector does not depend on the texts around it; and with the real
# all-MiniLM-L6-v2 (IMS_MINILM_DIR, set by `make check`) the sentences of
# tests/fixtures/minilm_golden, read from stdin, match sentence-transformers'
# own embeddings (expected.f32) with cosine >= 0.99999 each: the C tokenizer's
# ids and the C encoder together against the Python reference.
# usage: test_cli_embed_text.sh IMGSEARCH FIXTURES_DIR
set -u
bin=$1 fixtures=$2
. "$(dirname "$0")/cli_check.sh"
check "tiny text model" run 0 convert "$fixtures/hf_tiny_bert" -o "$work/tiny.isw"
printf 'a horse in a field\nzebra\n\ncaf\xc3\xa9 au lait\n' >"$work/lines.txt"
check "stdin to .npy" run 0 embed-text --text-model "$work/tiny.isw" -o "$work/e.npy" <"$work/lines.txt"
check "stdin to JSON" run 0 embed-text --text-model "$work/tiny.isw" --json <"$work/lines.txt"
cp "$work/out" "$work/e.json"
check "one --text" run 0 embed-text --text-model "$work/tiny.isw" --text zebra
cp "$work/out" "$work/zebra.json"
check "no model is a usage error" run 2 embed-text --text x
check "a missing model" run 1 embed-text --text-model "$work/none.isw" --text x
check "one-line error" one_line
if python3 -c 'import numpy' 2>/dev/null; then
  check "outputs agree" python3 - "$work" <<'PY'
import json, sys
import numpy as np
w = sys.argv[1]
e = np.load(w + "/e.npy")
j = [json.loads(l) for l in open(w + "/e.json")]
assert e.shape == (4, len(j[0]["embedding"])) and e.dtype == np.float32, e.shape
assert [x["text"] for x in j] == ["a horse in a field", "zebra", "", "café au lait"], [x["text"] for x in j]
assert np.allclose(e, np.array([x["embedding"] for x in j], dtype=np.float32), atol=1e-7)
assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5), np.linalg.norm(e, axis=1)
z = np.array(json.loads(open(w + "/zebra.json").readline())["embedding"], dtype=np.float32)
assert np.abs(z - e[1]).max() <= 1e-6, np.abs(z - e[1]).max()  # alone or among others: the same
PY
  if [ -n "${IMS_MINILM_DIR:-}" ] && [ -d "$IMS_MINILM_DIR" ]; then
    check "MiniLM model" run 0 convert "$IMS_MINILM_DIR" -o "$work/minilm.isw"
    g=$fixtures/minilm_golden
    check "golden sentences" run 0 embed-text --text-model "$work/minilm.isw" -o "$work/golden.npy" <"$g/sentences.txt"
    check "cosine >= 0.99999 against sentence-transformers" python3 - "$work/golden.npy" "$g/expected.f32" <<'PY'
import sys
import numpy as np
e = np.load(sys.argv[1]).astype(np.float64)
x = np.fromfile(sys.argv[2], dtype="<f4").astype(np.float64).reshape(e.shape[0], -1)
cos = (e * x).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(x, axis=1)
print("sentences", len(cos), "min cosine", cos.min())
assert cos.min() >= 0.99999, (cos.argmin(), cos.min())
PY
  else
    echo "note: IMS_MINILM_DIR not set: the MiniLM golden sentences were not checked"
  fi
fi
finish
