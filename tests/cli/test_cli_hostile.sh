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
