#!/usr/bin/env bash
# test_cli_hostile.sh: hostile and careless inputs around the files and streams
# the commands touch (the hardening issue's regression tests):
# - FIFOs and endless devices given as models, weight files and index files are
#   refused at once, never read or waited on (each run is under a time bound);
# - a manifest count too large for its file is refused with a message;
# - results that cannot be written (>/dev/full) and stdin that cannot be read
#   (a folder, /dev/zero's endless line) fail with a message, not exit 0;
# - knn with no queries, and with a table of 0-dimensional rows.
# usage: test_cli_hostile.sh IMGSEARCH FIXTURES_DIR
set -u
bin=$1 fixtures=$2
. "$(dirname "$0")/cli_check.sh"

# Every command here must end quickly: a hang is a failure, not a stuck CI.
bounded() { timeout 60 "$@"; }
brun() { local want=$1; shift; bounded "$bin" "$@" >"$work/out" 2>"$work/err"; local got=$?
  [ "$got" -eq "$want" ] || { echo "imgsearch $*: exit $got, expected $want; stderr:" >&2; cat "$work/err" >&2; return 1; }; }

check "text model" run 0 convert "$fixtures/hf_tiny_bert" -o "$work/text.isw"
mkfifo "$work/fifo.isw" "$work/fifo.pt"

# ---- FIFOs and devices as inputs ----
check "info on a FIFO" brun 1 info "$work/fifo.isw"
check "info on a FIFO: says why" contains err "not a regular file"
check "convert a FIFO" brun 1 convert "$work/fifo.pt" -o "$work/x.isw"
check "info on /dev/zero" brun 1 info /dev/zero
check "tokenize with a FIFO model" brun 1 tokenize --text-model "$work/fifo.isw" </dev/null
check "embed-text with /dev/zero as the model" brun 1 embed-text --text-model /dev/zero --text hi

# An index whose chunk files are a FIFO and /dev/zero.
check "synthetic image model" run 0 convert --synthetic -o "$work/iv3.isw"
mkdir -p "$work/photos"
cp "$fixtures/images/horse.png" "$fixtures/images/jpg_420.jpg" "$work/photos/"
check "index" run 0 index "$work/photos" -o "$work/idx" --image-model "$work/iv3.isw" --device cpu --chunk-rows 1
cp -r "$work/idx" "$work/idx_fifo"
rm "$work/idx_fifo/chunk-000000.rows.txt"
mkfifo "$work/idx_fifo/chunk-000000.rows.txt"
check "search an index whose rows file is a FIFO" brun 1 search "$work/idx_fifo" --image "$work/photos/horse.png" --device cpu
check "... says the file is not regular" contains err "not a regular file"
cp -r "$work/idx" "$work/idx_zero"
rm "$work/idx_zero/chunk-000001.visual.npy"
ln -s /dev/zero "$work/idx_zero/chunk-000001.visual.npy"
check "search an index whose table is /dev/zero" brun 1 search "$work/idx_zero" --image "$work/photos/horse.png" --device cpu
check "index into an index whose table is /dev/zero" brun 1 index "$work/photos" -o "$work/idx_zero" \
  --image-model "$work/iv3.isw" --device cpu --chunk-rows 1

# A manifest that claims more failures than its file could hold.
cp -r "$work/idx" "$work/idx_big"
python3 - "$work/idx_big/manifest.json" <<'PY' || failed=$((failed + 1))
import json, sys
m = json.load(open(sys.argv[1]))
m["failures"] = m["chunks"][0]["failures"] = 2**62
json.dump(m, open(sys.argv[1], "w"))
PY
check "a hostile failure count" brun 1 search "$work/idx_big" --image "$work/photos/horse.png" --device cpu
check "... is named" contains err "more than its"

# ---- output that cannot be written, input that cannot be read ----
if [ -w /dev/full ]; then
  bounded "$bin" info "$work/text.isw" >/dev/full 2>"$work/err"
  check "info >/dev/full fails" test $? -eq 1
  check "... and says so" contains err "writing the results failed"
  bounded "$bin" embed-text --text-model "$work/text.isw" --text hi >/dev/full 2>"$work/err"
  check "embed-text >/dev/full fails" test $? -eq 1
  bounded "$bin" search "$work/idx" --image "$work/photos/horse.png" --device cpu >/dev/full 2>"$work/err"
  check "search >/dev/full fails" test $? -eq 1
else
  echo "note: /dev/full is not writable here; the full-output checks did not run"
fi
bounded "$bin" tokenize --text-model "$work/text.isw" <"$work/photos" >/dev/null 2>"$work/err"
check "tokenize with a folder as stdin fails" test $? -eq 1
check "... saying why" contains err "reading stdin failed"
bounded "$bin" embed-text --text-model "$work/text.isw" </dev/zero >/dev/null 2>"$work/err"
check "embed-text on /dev/zero stops" test $? -eq 1
check "... at the line limit" contains err "is longer than"
printf 'a cat\n' >"$work/q.txt"
bounded "$bin" search "$work/idx" --queries "$work/photos" --device cpu >/dev/null 2>"$work/err"
check "a folder as the queries file fails" test $? -eq 1

# ---- names that are not text: JSON stays valid, the terminal sees no controls ----
mkdir -p "$work/odd"
cp "$fixtures/images/horse.png" "$work/odd/$(printf 'esc\033]0;pwned\007.png')"
cp "$fixtures/images/jpg_420.jpg" "$work/odd/$(printf 'new\nline.jpg')"
cp "$fixtures/images/horse.png" "$work/odd/$(printf 'latin1_\xe9.png')"
check "index odd names" run 0 index "$work/odd" -o "$work/idx_odd" --image-model "$work/iv3.isw" --device cpu
check "search --json over odd names" run 0 search "$work/idx_odd" --image "$work/photos/horse.png" -k 3 --device cpu --json
check "the JSON is valid and the bytes come back" python3 - "$work/out" "$work/odd" <<'PY'
import json, os, sys, urllib.parse
names = set(os.listdir(os.fsencode(sys.argv[2])))
got = set()
for line in open(sys.argv[1], encoding="utf-8"):          # strict UTF-8: raises on invalid bytes
    for r in json.loads(line)["results"]:
        raw = urllib.parse.unquote_to_bytes(r["path_bytes"]) if "path_bytes" in r else r["path"].encode()
        got.add(os.path.basename(raw))
        assert ("path_bytes" in r) == (b"\xe9" in raw), r
assert got == names, (got, names)
PY
check "search text output" run 0 search "$work/idx_odd" --image "$work/photos/horse.png" -k 3 --device cpu
check "no raw escape or split line in the table" python3 - "$work/out" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
assert b"\x1b" not in data and b"\x07" not in data, data
lines = data.decode("utf-8").splitlines()
assert len(lines) == 2 + 3, lines                         # header, column names, 3 results
assert any("\\x1b" in l for l in lines) and any("\\x0a" in l for l in lines) and any("\\xe9" in l for l in lines), lines
PY

# ---- a model with a NaN weight: no bare nan in the output ----
cp -r "$fixtures/hf_tiny_bert" "$work/nan_bert"
python3 - "$work/nan_bert/model.safetensors" <<'PY' || failed=$((failed + 1))
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
name = next(k for k in h if k.endswith("LayerNorm.weight"))
start = 8 + n + h[name]["data_offsets"][0]
assert h[name]["dtype"] == "F32"
b[start:start + 4] = struct.pack("<f", float("nan"))
open(sys.argv[1], "wb").write(b)
PY
check "convert a model with a NaN weight" run 0 convert "$work/nan_bert" -o "$work/nan.isw"
check "embed-text refuses to print its NaN" run 1 embed-text --text-model "$work/nan.isw" --text hello --json
check "... saying so" contains err "non-finite"
check "... and printing nothing" test ! -s "$work/out"

# ---- careless command lines ----
check "an index into a folder of photos" run 1 index "$fixtures/images/horse.png" -o "$work/photos" \
  --image-model "$work/iv3.isw" --device cpu
check "... is refused, naming the folder" contains err "is not an index and not empty"
check "... and leaves it as it was" test ! -e "$work/photos/manifest.json"
check "a missing index" run 1 search "$work/no_such_index" --text cat
check "... says it is not one" contains err "not an index"
printf 'a cat\n@\n' >"$work/q_at.txt"
check "a queries line of just @" run 1 search "$work/idx" --queries "$work/q_at.txt" --device cpu
check "... is named with its line" contains err "line 2: '@' names no image"

# ---- knn edge shapes ----
python3 - "$work" <<'PY' || failed=$((failed + 1))
import sys, numpy as np
w = sys.argv[1]
np.save(w + "/t.npy", np.arange(1, 21, dtype="f4").reshape(5, 4))
np.save(w + "/q0.npy", np.zeros((0, 4), "f4"))
np.save(w + "/t5x0.npy", np.zeros((5, 0), "f4"))
PY
check "knn with no queries" run 0 knn "$work/t.npy" "$work/q0.npy" -k 3
check "knn with 0-dimensional rows" run 1 knn "$work/t5x0.npy" "$work/q0.npy" -k 3
check "... names the dimension" contains err "dimension 0"

finish
