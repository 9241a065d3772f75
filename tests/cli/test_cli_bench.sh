#!/usr/bin/env bash
# test_cli_bench.sh: `imgsearch bench --quick` in CPU mode as a smoke test: every
# workload runs (the text one on the tiny BERT fixture, indexing on two
# images), the JSON lines parse, and every rate is positive and finite.
# usage: test_cli_bench.sh IMGSEARCH FIXTURES_DIR
set -u
bin=$1 fixtures=$2
. "$(dirname "$0")/cli_check.sh"
check "tiny text model" run 0 convert "$fixtures/hf_tiny_bert" -o "$work/text.isw"
mkdir -p "$work/images"
cp "$fixtures/images/horse.png" "$fixtures/images/jpg_420.jpg" "$work/images/"
check "bench --quick --json" run 0 bench --quick --json --device cpu --text-model "$work/text.isw" --images "$work/images"
check "bench output" python3 - "$work/out" <<'PY'
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
head, rows = lines[0], lines[1:]
assert head["copy_gb_per_s"] > 0 and head["gemm_tflop_per_s"] > 0, head
names = [r["workload"] for r in rows]
for prefix in ("inception_v3 fp32", "text fp32", "knn f16", "index fp32"):
    assert any(n.startswith(prefix) for n in names), (prefix, names)
for r in rows:
    rate = r.get("per_s")
    assert rate is not None and math.isfinite(rate) and rate > 0, r
PY
check "a readable table" run 0 bench --quick --device cpu --only knn
check "table columns" contains out "of ceiling"
check "bad option" run 2 bench --frobnicate
finish
