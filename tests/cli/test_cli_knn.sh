#!/usr/bin/env bash
# test_cli_knn.sh: `imgsearch knn` end to end on tests/fixtures/knn (made by
# make_knn_fixtures.py): integer-valued rows, so the expected JSON lines (ids by
# score desc, row asc; exact scores) are compared byte for byte, for f32 and f16
# files and storage, chunked or not, k <= N and k > N; the .npz it writes (read
# with numpy when python3 has it, also checked on random data against a float64
# brute force); and the failures: every malformed file gets exit 1 and a
# one-line message naming the problem; bad command lines exit 2.
# usage: test_cli_knn.sh IMGSEARCH FIXTURES_DIR
set -u
bin=$1 fixtures=$2/knn
. "$(dirname "$0")/cli_check.sh"
T=$fixtures/table.npy Q=$fixtures/queries.npy
same() { cmp -s "$work/out" "$1" || { echo "stdout differs from $1:" >&2; diff "$work/out" "$1" >&2 | head >&2; return 1; }; }

# Exact results, every way of getting them (the CPU backend; cuda when present via auto).
for dev in cpu auto; do
  check "ip k5 $dev" run 0 knn "$T" "$Q" -k 5 --metric ip --device $dev --dtype f32
  check "ip k5 $dev out" same "$fixtures/expected_ip_k5.jsonl"
  check "ip k5 f16 $dev" run 0 knn "$fixtures/table_f16.npy" "$fixtures/queries_f16.npy" -k 5 --metric ip --dtype f16 --device $dev
  check "ip k5 f16 $dev out" same "$fixtures/expected_ip_k5.jsonl"
  check "ip k5 chunked $dev" run 0 knn "$T" "$Q" -k 5 --metric ip --chunk-rows 7 --device $dev --json
  check "ip k5 chunked $dev out" same "$fixtures/expected_ip_k5.jsonl"
  check "ip k100 $dev" run 0 knn "$T" "$Q" -k 100 --metric ip --chunk-rows 13 --device $dev
  check "ip k100 $dev out (k > N: all 50)" same "$fixtures/expected_ip_k100.jsonl"
done
check "plan line" contains err "50 rows x 8 dims"

# .npz output.
check "npz" run 0 knn "$T" "$Q" -k 5 --metric ip -o "$work/out.npz"
check "npz written" test -s "$work/out.npz"
check "npz quiet stdout" test ! -s "$work/out"
check "npz k100" run 0 knn "$T" "$Q" -k 100 -o "$work/out100.npz"
if command -v python3 >/dev/null && python3 -c "import numpy" 2>/dev/null; then
  check "numpy reads npz" python3 - "$work" "$fixtures" <<'PY'
import json, sys
import numpy as np
work, fx = sys.argv[1], sys.argv[2]
z = np.load(f"{work}/out.npz")
exp = [json.loads(l) for l in open(f"{fx}/expected_ip_k5.jsonl")]
assert z["ids"].dtype == np.int64 and z["ids"].shape == (3, 5), z["ids"].shape
assert z["scores"].dtype == np.float32
assert z["ids"].tolist() == [e["ids"] for e in exp], z["ids"]
assert z["scores"].tolist() == [e["scores"] for e in exp]
z = np.load(f"{work}/out100.npz")
assert z["ids"].shape == (3, 100) and (z["ids"][:, 50:] == -1).all() and np.isneginf(z["scores"][:, 50:]).all()
PY
  # Random data, cosine: against a float64 brute force over the stored (f32) rows.
  check "random data" python3 - "$work" <<'PY'
import sys
import numpy as np
w = sys.argv[1]
rng = np.random.default_rng(7)
np.save(f"{w}/rt.npy", rng.standard_normal((3001, 37)).astype(np.float32))
np.save(f"{w}/rq.npy", rng.standard_normal((9, 37)).astype(np.float32))
PY
  check "random search" run 0 knn "$work/rt.npy" "$work/rq.npy" -k 20 --dtype f32 -o "$work/r.npz"
  check "random check" python3 - "$work" <<'PY'
import sys
import numpy as np
w = sys.argv[1]
t = np.load(f"{w}/rt.npy").astype(np.float64); q = np.load(f"{w}/rq.npy").astype(np.float64)
t /= np.linalg.norm(t, axis=1, keepdims=True); q /= np.linalg.norm(q, axis=1, keepdims=True)
s = q @ t.T
z = np.load(f"{w}/r.npz")
tol = 1e-5  # fp32 normalization and a length-37 fp32 dot product, with room
for i in range(len(q)):
    ref = np.sort(s[i])[::-1][:20]
    assert np.abs(z["scores"][i] - ref).max() < tol, (i, z["scores"][i], ref)
    assert len(set(z["ids"][i].tolist())) == 20
    assert np.abs(s[i][z["ids"][i]] - z["scores"][i]).max() < tol
PY
fi

# One query vector (1-D) is one row: the first line of the expected output.
check "vector query" run 0 knn "$T" "$fixtures/vector.npy" -k 5 --metric ip --device cpu
check "vector query output" contains out '{"query": 0, "ids": ['

# Malformed inputs: exit 1, one line naming the problem.
bad() { local file=$1 text=$2; shift 2
  check "$file" run 1 knn "$fixtures/$file" "$Q" -k 3 --device cpu "$@"
  check "$file says '$text'" contains err "$text"
  check "$file one line" one_line
}
bad f64.npy "dtype '<f8'; knn needs float32"  # .npy reads float64 (FID statistics); knn refuses it by name
bad i32.npy "'<i4' is not supported"
bad fortran.npy "Fortran"
bad truncated.npy "truncated data"
bad lying_header.npy "truncated data"
bad garbage.npy "not a .npy file"
bad vector.npy "must be 2-D"
# Bad rows are found while loading, after the plan line: two lines on stderr.
for f in zero_row.npy:"row 7 is all zeros" nan_row.npy:"row 12 has a NaN"; do
  check "${f%%:*}" run 1 knn "$fixtures/${f%%:*}" "$Q" -k 3 --device cpu
  check "${f%%:*} says" contains err "${f#*:}"
  check "${f%%:*} two lines" test "$(wc -l <"$work/err")" -eq 2
done
check "missing file" run 1 knn "$work/nope.npy" "$Q" -k 3 --device cpu
check "missing file named" contains err "nope.npy"
check "dim mismatch" run 1 knn "$T" "$fixtures/queries_dim7.npy" -k 3 --device cpu
check "dim mismatch says" contains err "dim 7"
check "f16 overflow in ip" run 0 knn "$T" "$Q" -k 3 --metric ip --dtype f16 --device cpu

# Bad command lines: exit 2.
check "no k" run 2 knn "$T" "$Q"
check "k 0" run 2 knn "$T" "$Q" -k 0
check "k too big" run 2 knn "$T" "$Q" -k 16385
check "k says range" contains err "1..16384"
check "bad metric" run 2 knn "$T" "$Q" -k 3 --metric l2
check "bad dtype" run 2 knn "$T" "$Q" -k 3 --dtype f64
check "bad device" run 2 knn "$T" "$Q" -k 3 --device tpu
check "one file" run 2 knn "$T" -k 3
check "three files" run 2 knn "$T" "$Q" "$Q" -k 3
check "unknown option" run 2 knn "$T" "$Q" -k 3 --fast
check "bad gpu list" run 2 knn "$T" "$Q" -k 3 --gpu 0,x
check "bad gpu list says" contains err "a list such as 0,1 or 'all'"
check "gpu list on cpu" run 1 knn "$T" "$Q" -k 3 --gpu 0,1 --device cpu
check "gpu list on cpu one line" one_line
# Several GPUs: the split table's answer is the single table's (skipped without two GPUs).
if "$bin" knn "$T" "$Q" -k 5 --metric ip --gpu all >"$work/out" 2>"$work/err"; then
  check "gpu all out" same "$fixtures/expected_ip_k5.jsonl"
else
  check "gpu all fails in one line without a GPU" one_line
fi
check "help" run 0 knn --help
check "help text" contains out "usage: imgsearch knn"
check "no temp files" test -z "$(ls "$work" | grep '\.tmp\.')"
finish
