#!/usr/bin/env bash
# test_cli_inception.sh: `imgsearch classify` and `imgsearch embed-image` end
# to end on the sample images, with models converted from the width/16
# Inception fixtures (tests/fixtures/inception: torchvision and FID layouts;
# the graph takes its widths from the file). Checks the outputs' shapes and
# agreement between the two commands (the top class of classify is the argmax
# of embed-image's logits), a bad image (reported, skipped, exit 3), no
# readable image (exit 1, nothing written) and bad command lines (exit 2).
# usage: test_cli_inception.sh IMGSEARCH FIXTURES_DIR
set -u
bin=$1 fixtures=$2
. "$(dirname "$0")/cli_check.sh"
imgs="$fixtures/images"
good=("$imgs/horse.png" "$imgs/chelsea.png" "$imgs/jpg_444.jpg")

check "convert tv" run 0 convert "$fixtures/inception/tv_zip.pt" -o "$work/tv.isw"
check "convert fid" run 0 convert "$fixtures/inception/fid_zip.pt" -o "$work/fid.isw"

check "classify help" run 0 classify --help
check "main help lists classify" run 0 --help
check "main help names classify" contains out "classify IMAGE"
check "main help names embed-image" contains out "embed-image IMAGE"

check "classify" run 0 classify "${good[@]}" --image-model "$work/tv.isw" -k 3 --device cpu
check "classify names the image" contains out "horse.png"
check "classify: 3 classes x 3 images + 3 names" test "$(wc -l <"$work/out")" -eq 12
check "classify labels" contains out "  "
cp "$work/out" "$work/classify.txt"
check "classify json" run 0 classify "${good[@]}" --image-model "$work/tv.isw" --json --device cpu
check "classify json fields" contains out '"probability"'
cp "$work/out" "$work/classify.json"
check "classify fid model (no labels)" run 0 classify "$imgs/horse.png" --image-model "$work/fid.isw" --json --device cpu
check "classify fid: label null" contains out '"label": null'

check "classify bad image" run 3 classify "$imgs/horse.png" "$imgs/bad_gif_truncated.gif" "$imgs/chelsea.png" --image-model "$work/tv.isw" --device cpu
check "classify bad image reported" contains err "bad_gif_truncated.gif"
check "classify others still done" contains out "chelsea.png"
check "classify no model" run 2 classify "$imgs/horse.png"
check "classify bad k" run 2 classify "$imgs/horse.png" --image-model "$work/tv.isw" -k 0
check "classify bad device" run 2 classify "$imgs/horse.png" --image-model "$work/tv.isw" --device tpu
check "classify missing model file" run 1 classify "$imgs/horse.png" --image-model "$work/none.isw" --device cpu
check "classify fp16 on cpu refused" run 1 classify "$imgs/horse.png" --image-model "$work/tv.isw" --device cpu --precision fp16

check "embed features" run 0 embed-image "${good[@]}" --image-model "$work/tv.isw" -o "$work/f.npy" --device cpu
check "embed summary" contains out "3 of 3 images, float32 (3, 128) features"
check "embed logits" run 0 embed-image "${good[@]}" --image-model "$work/tv.isw" -o "$work/l.npy" --what logits --device cpu
check "embed logits summary" contains out "(3, 1000) logits"
check "embed fid" run 0 embed-image "${good[@]}" --image-model "$work/fid.isw" -o "$work/fid.npy" --device cpu
check "embed fid mode on tv model" run 0 embed-image "${good[@]}" --image-model "$work/tv.isw" -o "$work/tvfid.npy" --mode fid --device cpu
check "embed batch 2 (a partial last batch)" run 0 embed-image "${good[@]}" --image-model "$work/tv.isw" -o "$work/f2.npy" --batch 2 --device cpu
check "embed same bytes for any batch size" cmp -s "$work/f.npy" "$work/f2.npy"
check "embed bad image" run 3 embed-image "$imgs/horse.png" "$imgs/bad_random.bin" --image-model "$work/tv.isw" -o "$work/p.npy" --device cpu
check "embed bad image reported" contains err "bad_random.bin"
check "embed keeps the good rows" contains out "1 of 2 images"
check "embed nothing readable" run 1 embed-image "$imgs/bad_gif_truncated.gif" --image-model "$work/tv.isw" -o "$work/none.npy" --device cpu
check "embed nothing readable: no file" test ! -e "$work/none.npy"
check "embed no temp files" test -z "$(ls "$work" | grep '\.tmp\.')"
check "embed no output" run 2 embed-image "$imgs/horse.png" --image-model "$work/tv.isw"
check "embed bad what" run 2 embed-image "$imgs/horse.png" --image-model "$work/tv.isw" -o "$work/x.npy" --what pixels
check "embed bad mode" run 2 embed-image "$imgs/horse.png" --image-model "$work/tv.isw" -o "$work/x.npy" --mode raw

if command -v python3 >/dev/null && python3 -c 'import numpy' 2>/dev/null; then
  check "npy contents agree with classify" python3 - "$work" <<'PYEOF'
import json, sys
import numpy as np
w = sys.argv[1]
f, l, fid, p = (np.load(f"{w}/{n}.npy") for n in ("f", "l", "fid", "p"))
assert f.shape == (3, 128) and f.dtype == np.float32, f.shape
assert l.shape == (3, 1000) and fid.shape == (3, 128) and p.shape == (1, 128), (l.shape, fid.shape, p.shape)
assert np.isfinite(f).all() and np.isfinite(l).all() and (f >= 0).all() and f.std() > 0, "features"
assert np.array_equal(p[0], f[0]), "horse's row differs with a failed image beside it"
assert not np.array_equal(f, fid), "fid model gives the tv model's features"
top = json.load(open(f"{w}/classify.json"))
for i, item in enumerate(top):
    probs = np.exp(l[i].astype(np.float64) - l[i].max()); probs /= probs.sum()
    assert item["top"][0]["class"] == int(np.argmax(l[i])), (i, item["top"][0], int(np.argmax(l[i])))
    assert abs(item["top"][0]["probability"] - probs.max()) < 1e-6, item["top"][0]
PYEOF
fi
finish
