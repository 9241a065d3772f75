#!/usr/bin/env bash
# test_cli_bench.sh: `imgsearch bench` on the CPU with tiny shapes: every
# workload and option, each output format read by its reader (json and jsonl
# by Python's json, csv by its csv module, md as a table), --compare against
# saved runs, and the usage errors (unknown workload or precision: exit 2
# naming the valid ones). Rates are only checked to be positive and ordered.
# usage: test_cli_bench.sh IMGSEARCH FIXTURES_DIR
set -u
bin=$1 fixtures=$2
. "$(dirname "$0")/cli_check.sh"
check "tiny text model" run 0 convert "$fixtures/hf_tiny_bert" -o "$work/text.isw"
mkdir -p "$work/images"
cp "$fixtures/images/horse.png" "$fixtures/images/jpg_420.jpg" "$work/images/"
fast=(--device cpu --quick -r 2 --warmup 0 --seconds 0.05)
knn=(--knn-shape 3000:32:2:5,3000:32:4:5)

# Every workload, one JSON document.
check "all workloads -o json" run 0 bench "${fast[@]}" -w inception,text,knn,index,decode,tokenize -b 1 \
  --seq short "${knn[@]}" --text-model "$work/text.isw" --images "$work/images" -o json
cp "$work/out" "$work/all.json"
check "json rows" python3 - "$work/all.json" <<'PY'
import json, math, sys
rows = json.load(open(sys.argv[1]))
assert isinstance(rows, list), rows
units = {"inception": "images/s", "text": "texts/s", "knn": "queries/s", "index": "images/s",
         "decode": "images/s", "tokenize": "texts/s"}
assert sorted({r["workload"] for r in rows}) == sorted(units), [r["workload"] for r in rows]
for r in rows:
    assert r["unit"] == units[r["workload"]], r
    assert r["backend"] == "cpu" and r["device"] and r["commit"], r
    v = r["versions"]
    assert isinstance(v, dict) and v["imgsearch"] and v["libpng"] and v["libjpeg-turbo"] and v["openblas"], v
    assert "cuda_runtime" in v or v.get("cuda") == "not built", v
    c = r["clocks"]
    assert c["sm_mhz"] is None and c["power_limit_w"] is None and c["source"].startswith("unknown"), c
    assert r["ceilings"]["copy_gb_per_s"] > 0 and r["ceilings"]["gemm_tflop_per_s"] > 0, r
    assert r["reps"] == 2 and r["calls"] >= 1, r
    for key in ("median", "min", "max", "ms_per_call"):
        assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, (key, r)
    assert r["min"] <= r["median"] <= r["max"], r
    assert r["flop_per_item"] or r["bytes_per_item"], r
knn = [r for r in rows if r["workload"] == "knn"]
assert [(r["rows"], r["dim"], r["batch"], r["k"]) for r in knn] == [(3000, 32, 2, 5), (3000, 32, 4, 5)], knn
assert all(type(r[key]) is int for r in knn for key in ("rows", "dim", "batch", "k", "reps", "calls")), knn
assert all(r["precision"] is None and r["seq"] == "short" for r in rows if r["workload"] == "tokenize"), rows
assert all(r["files"] == 2 for r in rows if r["workload"] in ("index", "decode")), rows
assert all(r["batch"] == 1 and r["precision"] == "fp32" for r in rows if r["workload"] in ("inception", "text")), rows
assert all(0 < r["fraction_of_gemm"] for r in rows if r["workload"] in ("inception", "knn")), rows
PY

# CSV, read by Python's csv module: one header, one line per point.
check "-o csv" run 0 bench "${fast[@]}" -w knn,tokenize --seq short,long "${knn[@]}" --text-model "$work/text.isw" -o csv
check "csv rows" python3 - "$work/out" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert [(r["workload"], r["batch"], r["seq"]) for r in rows] == [
    ("knn", "2", ""), ("knn", "4", ""), ("tokenize", "256", "short"), ("tokenize", "256", "long")], rows
for r in rows:
    assert float(r["median"]) > 0 and r["unit"] and r["version_imgsearch"] and r["commit"], r
    assert r["clocks_sm_mhz"] == "" and r["clocks_source"].startswith("unknown"), r
PY

# JSON lines, each parsed alone; --json is -o jsonl; -r and --warmup.
check "-o jsonl" run 0 bench "${fast[@]}" -w knn "${knn[@]}" -r 3 --warmup 1 -o jsonl
cp "$work/out" "$work/knn.jsonl"
check "jsonl rows" python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2 and all(r["reps"] == 3 for r in rows), rows' "$work/knn.jsonl"
check "--json" run 0 bench "${fast[@]}" -w knn --knn-shape 3000:32:2:5 --json
check "--json is jsonl" python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1 and json.loads(lines[0])["k"] == 5, lines' "$work/out"

# Markdown: a header, then a table whose rows have the header's cells.
check "-o md" run 0 bench "${fast[@]}" -w knn "${knn[@]}" -o md
check "md table" python3 - "$work/out" <<'PY'
import sys
text = open(sys.argv[1]).read()
assert text.startswith("imgsearch bench on ") and "versions: imgsearch " in text and "clocks: unknown" in text, text
table = [l for l in text.splitlines() if l.startswith("|")]
cells = [l.strip("|").split(" | ") for l in table]
assert cells[0][:2] == [" workload", "precision"] and "median" in table[0] and "unit" in table[0], table
assert set(table[1]) <= set("|-:") and len(table) == 4, table
assert all(len(c) == len(cells[0]) for c in cells[2:]), table
assert all(c[0].strip() == "knn" and c[12] == "queries/s" for c in cells[2:]), table
PY

# --compare: ratios against a saved jsonl run and a saved json run.
check "--compare jsonl" run 0 bench "${fast[@]}" -w knn --knn-shape 3000:32:2:5,3000:32:8:5 -o json --compare "$work/knn.jsonl"
check "compare rows" python3 - "$work/out" "$work/knn.jsonl" <<'PY'
import json, sys
rows, saved = json.load(open(sys.argv[1])), [json.loads(l) for l in open(sys.argv[2])]
assert rows[0]["saved_median"] == saved[0]["median"], (rows[0], saved[0])
assert abs(rows[0]["ratio"] - rows[0]["median"] / saved[0]["median"]) < 1e-6 * rows[0]["ratio"], rows[0]
assert rows[1]["batch"] == 8 and rows[1]["saved_median"] is None and rows[1]["ratio"] is None, rows[1]
PY
check "--compare json, md" run 0 bench "${fast[@]}" -w knn --knn-shape 3000:32:2:5 -o md --compare "$work/all.json"
check "md ratio column" contains out "| saved | ratio |"
check "md ratio value" grep -Eq '\| [0-9.]+x \|$' "$work/out"
printf 'not json\n' >"$work/bad.json"
check "--compare a bad file" run 1 bench "${fast[@]}" -w knn --knn-shape 3000:32:2:5 --compare "$work/bad.json"
check "bad file named" contains err "bad.json: line 1"
check "bad file: one line" one_line
# Hostile saved runs: each refused with one line naming the file, or (valid
# rows of other types) matched with nothing.
: >"$work/empty.json"
printf '[1, 2]' >"$work/numbers.json"
printf '{"workload": 5}\n' >"$work/typed.jsonl"
printf '{"workload": "knn", "median": 1}\n\xff\xfe\n' >"$work/bytes.jsonl"
head -c 300000 /dev/zero | tr '\0' '[' >"$work/deep.json"
for bad in empty numbers typed bytes deep; do
  f=$work/$bad.json; [ -f "$f" ] || f=$work/$bad.jsonl
  check "--compare $bad" run 1 bench --device cpu -w knn --compare "$f"
  check "--compare $bad: named" contains err "$f"
  check "--compare $bad: one line" one_line
done
check "--compare a folder" run 1 bench --device cpu -w knn --compare "$work"
check "--compare a folder: one line" one_line
check "--compare a missing file" run 1 bench --device cpu -w knn --compare "$work/absent.json"
printf '{"workload": "knn", "median": "fast", "batch": "2", "rows": 3000, "dim": 32, "k": 5, "precision": "f16"}\n' \
  >"$work/strange.jsonl"
check "--compare odd types" run 0 bench "${fast[@]}" -w knn --knn-shape 3000:32:2:5 -o jsonl --compare "$work/strange.jsonl"
check "odd types: no ratio" python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["ratio"] is None and r["saved_median"] is None, r' "$work/out"

# Devices.
check "--list-devices -o json" run 0 bench --list-devices -o json
check "devices parse" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d[0]["backend"] == "cpu" and d[0]["threads"] >= 1, d' "$work/out"

# Usage errors name the valid values; nothing measured is a failure.
check "unknown workload" run 2 bench -w inception,frobnicate
check "workloads named" contains err "unknown workload 'frobnicate' (the workloads: inception, text, knn, index, decode, tokenize, knn-parts)"
check "unknown precision" run 2 bench -p fp16,fp8
check "precisions named" contains err "unknown precision 'fp8' (the precisions: fp32, tf32, fp16)"
check "unknown format" run 2 bench -o xml
check "formats named" contains err "expected md, csv, json or jsonl"
check "bad knn shape" run 2 bench --knn-shape 10:2:3
check "bad seq" run 2 bench --seq medium
check "bad batch" run 2 bench -b 0
check "bad reps" run 2 bench -r 0
check "bad seconds" run 2 bench --seconds -1
check "text without a model" run 2 bench -w text
check "model named" contains err "give --text-model"
check "images needed" run 2 bench -w decode
# knn-parts (opt-in): three rows per shape and the summary, labelled as CPU numbers here.
check "knn-parts" run 0 bench "${fast[@]}" -w knn-parts --knn-shape 3000:32:2:5 -o json
check "knn-parts rows" python3 - "$work/out" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
assert [(r["workload"], r["precision"], r["k"]) for r in rows] == [
    ("knn-parts", "f16 scores", 1), ("knn-parts", "f16 scores+select", 5),
    ("knn-parts", "f16 streamed 8 chunks+merge", 5)], rows
assert all(r["median"] > 0 and r["fraction_of_copy"] > 0 for r in rows), rows
PY
check "knn-parts summary" contains err "knn-parts N=3000 D=32 B=2 k=5 (CPU backend: CPU numbers): scores"
check "knn-parts not by default" run 0 bench "${fast[@]}" -w knn "${knn[@]}" -o json
check "knn-parts not by default rows" lacks out "knn-parts"

check "bad option" run 2 bench --frobnicate
check "nothing measured" run 1 bench "${fast[@]}" -w inception -p fp16
check "skip noted" contains err "skipped inception fp16"
check "no results" contains err "no results"
finish
