#!/usr/bin/env bash
# test_cli_preprocess.sh: `imgsearch preprocess` end to end: the .npy files it
# writes (header, shape, dtype, size; values with numpy when python3 has it),
# the same bytes for any thread count, and the failures: a missing or corrupt
# image (exit 1, one message per image, nothing written, an older output left
# as it was, no temporary file left behind) and bad command lines (exit 2).
# usage: test_cli_preprocess.sh IMGSEARCH FIXTURES_DIR
set -u
bin=$1 fixtures=$2
. "$(dirname "$0")/cli_check.sh"
absent() { [ ! -e "$1" ] || { echo "$1 exists" >&2; return 1; }; }
no_temp_files() { ! ls "$work" | grep -q '\.tmp\.' || { echo "temporary file left:" >&2; ls "$work" >&2; return 1; }; }
lines() { [ "$(wc -l <"$work/$1")" -eq "$2" ] || { echo "$1 is not $2 lines:" >&2; cat "$work/$1" >&2; return 1; }; }

img1="$fixtures/images/horse.png" img2="$fixtures/images/jpg_444.jpg"

# npy_check FILE DESCR SHAPE: the 1.0 header, 64-byte aligned data, and the size.
if command -v python3 >/dev/null; then
  npy_check() {
    python3 - "$@" <<'EOF'
import ast, struct, sys
path, descr, shape = sys.argv[1], sys.argv[2], ast.literal_eval(sys.argv[3])
data = open(path, "rb").read()
assert data[:8] == b"\x93NUMPY\x01\x00", data[:8]
hlen = struct.unpack("<H", data[8:10])[0]
assert (10 + hlen) % 64 == 0, hlen
header = data[10:10 + hlen].decode("latin1")
assert header.endswith("\n"), repr(header)
d = ast.literal_eval(header.strip())
assert d == {"descr": descr, "fortran_order": False, "shape": shape}, d
itemsize = 1 if descr == "|u1" else 4
n = itemsize
for s in shape:
    n *= s
assert len(data) == 10 + hlen + n, (len(data), hlen, n)
EOF
  }
  have_numpy() { python3 -c 'import numpy' 2>/dev/null; }
else
  npy_check() { [ -s "$1" ] && head -c 6 "$1" | grep -q NUMPY; }
  have_numpy() { false; }
fi

check "help" run 0 preprocess --help
check "help says nothing is written on failure" contains out "nothing is written"
check "main help lists preprocess" run 0 --help
check "main help names preprocess" contains out "preprocess IMAGE"

check "float" run 0 preprocess "$img1" "$img2" -o "$work/f.npy"
check "float summary" contains out "2 images, float32 (2, 3, 299, 299)"
check "summary is one line" lines out 1
check "float header" npy_check "$work/f.npy" "<f4" "(2, 3, 299, 299)"
check "no temporary file" no_temp_files

check "uint8" run 0 preprocess --uint8 "$img1" "$img2" -o "$work/u.npy" --threads 1
check "uint8 header" npy_check "$work/u.npy" "|u1" "(2, 299, 299, 3)"
check "fid" run 0 preprocess --mode fid --exif ignore "$img2" "$img1" "$img2" -o "$work/fid.npy"
check "fid header" npy_check "$work/fid.npy" "<f4" "(3, 3, 299, 299)"

check "threads 1" run 0 preprocess "$img1" "$img2" "$img1" -o "$work/t1.npy" --threads 1
check "threads 3" run 0 preprocess "$img1" "$img2" "$img1" -o "$work/t3.npy" --threads 3
check "same bytes for 1 and 3 threads" cmp -s "$work/t1.npy" "$work/t3.npy"

if have_numpy; then
  check "float is the normalized uint8" python3 -c '
import numpy as np, sys
u = np.load(sys.argv[1]).astype(np.float64) / 255
f = np.load(sys.argv[2])
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
ref = ((u - mean) / std).transpose(0, 3, 1, 2)
assert np.abs(f - ref).max() < 1e-5, np.abs(f - ref).max()
' "$work/u.npy" "$work/f.npy"
  check "fid in [-1, 1], first and third equal" python3 -c '
import numpy as np, sys
a = np.load(sys.argv[1])
assert a.min() >= -1 and a.max() <= 1 and a.std() > 0.01 and (a[0] == a[2]).all()
' "$work/fid.npy"
fi

echo "an older file" >"$work/keep.npy"
check "missing image" run 1 preprocess "$img1" "$work/nope.jpg" -o "$work/keep.npy"
check "missing image named" contains err "imgsearch: $work/nope.jpg: "
check "older output kept" grep -q "an older file" "$work/keep.npy"
check "no temporary file after a failure" no_temp_files
printf '\x89PNG\r\n\x1a\n but not a PNG' >"$work/corrupt.png"
check "corrupt and missing" run 1 preprocess "$work/corrupt.png" "$img2" "$work/nope.jpg" -o "$work/bad.npy"
check "corrupt named" contains err "imgsearch: $work/corrupt.png: "
check "missing named too" contains err "imgsearch: $work/nope.jpg: "
check "nothing written" absent "$work/bad.npy"
check "no temporary file after two failures" no_temp_files

check "uint8 in fid mode" run 2 preprocess --mode fid --uint8 "$img1" -o "$work/x.npy"
check "uint8 in fid mode says why" contains err "torchvision"
check "no output" run 2 preprocess "$img1"
check "no image" run 2 preprocess -o "$work/x.npy"
check "bad mode" run 2 preprocess --mode bicubic "$img1" -o "$work/x.npy"
check "bad exif" run 2 preprocess --exif maybe "$img1" -o "$work/x.npy"
check "bad threads" run 2 preprocess --threads 0 "$img1" -o "$work/x.npy"
check "bad option" run 2 preprocess --bogus "$img1" -o "$work/x.npy"
check "no output after usage errors" absent "$work/x.npy"

finish
