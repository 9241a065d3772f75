#!/usr/bin/env bash
# test_cli_index_gpu.sh (label gpu): index and search on the CUDA backend
# against the CPU backend: the same files indexed, visual tables within the
# tolerance of fp32 vs fp32 on two backends stored as f16 (2e-3 per element;
# the GPU runs --precision fp32), the same nearest neighbours, and search on
# the GPU giving the CPU's answer. SKIPPED where no CUDA device exists.
# usage: test_cli_index_gpu.sh IMGSEARCH FIXTURES_DIR
set -u
bin=$1 fixtures=$2
if "$bin" devices | grep -q "^cuda *unavailable"; then
  echo "SKIPPED: $("$bin" devices | grep '^cuda' | sed 's/^cuda *//')"
  exit 77
fi
. "$(dirname "$0")/../cli/cli_check.sh"
check "synthetic image model" run 0 convert --synthetic -o "$work/iv3.isw"
check "text model" run 0 convert "$fixtures/hf_tiny_bert" -o "$work/text.isw"
mkdir -p "$work/photos"
for f in horse.png png_rgb8.png jpg_gray.jpg jpg_420.jpg jpg_444.jpg chelsea.png; do cp "$fixtures/images/$f" "$work/photos/"; done
for dev in cpu cuda; do
  check "index on $dev" run 0 index "$work/photos" -o "$work/index_$dev" --image-model "$work/iv3.isw" \
    --text-model "$work/text.isw" --device $dev --precision fp32 --batch 4
done
check "the same rows" cmp -s "$work/index_cpu/chunk-000000.rows.txt" "$work/index_cuda/chunk-000000.rows.txt"
if python3 -c 'import numpy' 2>/dev/null; then
  check "GPU tables match the CPU's" python3 -c '
import sys, numpy as np
for t in ("visual", "semantic"):
    a = np.load(sys.argv[1] + "/chunk-000000.%s.npy" % t).astype(np.float32)
    b = np.load(sys.argv[2] + "/chunk-000000.%s.npy" % t).astype(np.float32)
    err = np.abs(a - b).max()
    assert err <= 2e-3, (t, err)
    print(t, "max abs difference", err)' "$work/index_cpu" "$work/index_cuda"
fi
q=$work/photos/chelsea.png
for dev in cpu cuda; do
  check "search on $dev" run 0 search "$work/index_cpu" --image "$q" --text "a cat" -k 3 --json --device $dev
  cp "$work/out" "$work/search_$dev.json"
done
check "the GPU search gives the CPU's ranking" python3 -c '
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
for x, y in zip(a, b):
    assert [r["path"] for r in x["results"]][:1] == [r["path"] for r in y["results"]][:1], (x, y)
    for r, s in zip(x["results"], y["results"]):
        assert abs(r["score"] - s["score"]) < 2e-3, (r, s)' "$work/search_cpu.json" "$work/search_cuda.json"
finish
