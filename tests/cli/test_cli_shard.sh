#!/usr/bin/env bash
# test_cli_shard.sh: sharded indexing, index sets and search --mpi (docs/SCALE.md),
# end to end on the CPU with a full-size synthetic Inception-v3 and the tiny BERT:
# - index --shard I/N (and auto, from Slurm's and Open MPI's environment): every
#   file in exactly one shard, the shard remembered, a contradicting one refused;
# - index-set create / list, a folder of shards, a shard that disagrees refused;
# - search over a set file, a folder of shards and one index of the same files:
#   the same paths, scores (bit for bit) and order, for text, image and batch
#   queries (ties between duplicate images included), and info over a set;
# - adding files never moves a file to another shard;
# - with MPI: mpirun -n 2, 3 and 4 --oversubscribe give the one-process answer
#   (-n 4: a rank without a shard);
#   a missing shard and a corrupted table fail the run naming the rank.
# usage: test_cli_shard.sh IMGSEARCH FIXTURES_DIR MPIEXEC|none
set -u
bin=$1 fixtures=$2 mpiexec=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cli_check.sh"
work=$(cd "$work" && pwd -P) # the index stores canonical paths
img=$fixtures/images

check "synthetic image model" run 0 convert --synthetic -o "$work/iv3.isw"
check "text model" run 0 convert "$fixtures/hf_tiny_bert" -o "$work/text.isw"

photos=$work/photos
mkdir -p "$photos/sub/deeper"
for f in horse.png chelsea.png jpg_420.jpg png_rgb8.png webp_lossy.webp gif_palette.gif bmp_rgb24.bmp coffee.png \
  camera.png; do
  cp "$img/$f" "$photos/"
done
cp "$img/tif_rgb_lzw.tif" "$photos/sub/"
cp "$img/horse.png" "$photos/sub/deeper/horse_again.png" # a tie: the same picture twice
cp "$img/bad_truncated.png" "$photos/sub/broken.png"
args=(--image-model "$work/iv3.isw" --text-model "$work/text.isw" --device cpu --threads 2)

# ---- sharded indexing ----
check "one index of every file" run 3 index "$photos" -o "$work/single" "${args[@]}"
mkdir "$work/shards"
"$bin" index "$photos" -o "$work/shards/s{shard}" --shard 0/3 "${args[@]}" --chunk-rows 2 >"$work/out" 2>"$work/err"
rc=$?
check "shard 0/3 (exit 0, or 3 with the broken file)" test $rc -eq 0 -o $rc -eq 3
check "... {shard} in -o is the shard number" test -f "$work/shards/s0000/manifest.json"
env SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=3 "$bin" index "$photos" \
  -o "$work/shards/s{shard}" --shard auto "${args[@]}" >"$work/out" 2>"$work/err"
rc=$?
check "shard 1/3 from Slurm's array variables" test $rc -eq 0 -o $rc -eq 3
check "... wrote shard 1" test -f "$work/shards/s0001/manifest.json"
env OMPI_COMM_WORLD_RANK=2 OMPI_COMM_WORLD_SIZE=3 "$bin" index "$photos" -o "$work/shards/s{shard}" --shard auto \
  "${args[@]}" >"$work/out" 2>"$work/err"
rc=$?
check "shard 2/3 from Open MPI's rank" test $rc -eq 0 -o $rc -eq 3
check "... wrote shard 2" test -f "$work/shards/s0002/manifest.json"
check "every file in exactly one shard" python3 - "$work" <<'EOF'
import glob, sys, urllib.parse
w = sys.argv[1]
def records(d, kind, field):
    out = []
    for f in sorted(glob.glob(d + "/chunk-*." + kind + ".txt")):
        out += [urllib.parse.unquote_to_bytes(l.rstrip(b"\n").split(b"\t")[field]) for l in open(f, "rb")]
    return out
single = records(w + "/single", "rows", 3) + records(w + "/single", "failures", 2)
shards = [records(w + "/shards/s%04d" % i, "rows", 3) + records(w + "/shards/s%04d" % i, "failures", 2) for i in range(3)]
union = [p for s in shards for p in s]
assert sorted(union) == sorted(single) and len(set(union)) == len(union), (single, shards)
assert all(len(s) > 0 for s in shards), shards
EOF
check "the manifest records the shard" python3 -c '
import json, sys; m = json.load(open(sys.argv[1] + "/manifest.json"))
assert m["settings"]["shard"] == {"index": 1, "count": 3}, m["settings"]' "$work/shards/s0001"
check "a run without --shard keeps the shard" run 0 index -o "$work/shards/s0001" --device cpu
check "... and finds it all there" contains out "0 added, 0 updated, 0 removed"
check "another shard is refused" run 1 index "$photos" -o "$work/shards/s0001" --shard 2/3 --device cpu
check "... naming both" contains err "it holds shard 1/3 of the files, not 2/3"
check "a shard of a whole index is refused" run 1 index "$photos" -o "$work/single" --shard 0/3 --device cpu
check "... saying so" contains err "it holds all the files (no shard), not shard 0/3"
for bad in 3/3 -1/3 1/0 x 1/ /3 1/3x; do
  check "--shard $bad is a usage error" run 2 index "$photos" -o "$work/shards/bad" --shard "$bad" "${args[@]}"
done
env -u SLURM_ARRAY_TASK_ID -u OMPI_COMM_WORLD_RANK -u PMI_RANK \
  "$bin" index "$photos" -o "$work/shards/bad" --shard auto "${args[@]}" >"$work/out" 2>"$work/err"
check "--shard auto without a launcher is a usage error" test $? -eq 2 -a ! -e "$work/shards/bad"
check "... naming the variables it reads" contains err "none of SLURM_ARRAY_TASK_ID/_COUNT"

# ---- sets ----
check "index-set create" run 0 index-set create "$work/photos.set" "$work/shards/s0000" "$work/shards/s0001" \
  "$work/shards/s0002"
check "... stores paths below its folder relative to it" grep -qF '"shards/s0001"' "$work/photos.set"
check "index-set list" run 0 index-set list "$work/photos.set"
check "... counts the live rows" contains out "3 shards, 11 live rows"
check "a folder of shards is a set" run 0 index-set list "$work/shards"
check "... the same one" contains out "3 shards, 11 live rows"
check "a shard made otherwise" run 3 index "$photos/sub" -o "$work/other" "${args[@]}" --conse-top 5 --shard 0/1
check "... is refused by create" run 1 index-set create "$work/bad.set" "$work/shards/s0000" "$work/other"
check "... naming the shard and the difference" contains err "shard 1 ("
check "... (conse_top)" contains err "(--conse-top 10), not 5"
check "... and nothing is written" test ! -e "$work/bad.set"
check "a set of a folder that is no index" run 1 index-set create "$work/bad.set" "$photos"
check "a set file that is not one" run 1 search "$work/text.isw" --text x --device cpu
printf '{"format": "imgsearch-index-set", "version": 9, "shards": ["s"]}' >"$work/new.set"
check "a newer set version is refused" run 1 search "$work/new.set" --text x --device cpu
check "... saying so" contains err "a newer imgsearch wrote it"
check "info of a set" run 0 info "$work/photos.set"
check "... totals" contains out "3 shards, 11 live rows, 1 live failures"
check "... and each shard's place" contains out "shard       2 of 3"
check "info --json --verify of a set" run 0 info --json --verify "$work/shards"
check "... is JSON with every shard verified" python3 -c '
import json, sys; d = json.load(open(sys.argv[1]))
assert d["shard_count"] == 3 and d["rows"]["live"] == 11 and all(s["tables_verified"] for s in d["shards"]), d
assert [s["shard"] for s in d["shards"]] == [{"index": i, "count": 3} for i in range(3)], d' \
  "$work/out"

# ---- a set answers as one index ----
printf 'a horse\n@%s\n@%s\nsomething blue\n@%s\n' "$photos/horse.png" "$photos/camera.png" "$photos/missing.png" \
  >"$work/queries.txt"
same_hits() { # the same paths, scores and order in two JSON-lines outputs
  python3 - "$1" "$2" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) > 0, (len(a), len(b))
for x, y in zip(a, b):
    assert x["query"] == y["query"] and x["table"] == y["table"], (x, y)
    assert ("error" in x) == ("error" in y), (x, y)
    hx = [(h["path"], h["score"]) for h in x.get("results", [])]
    hy = [(h["path"], h["score"]) for h in y.get("results", [])]
    assert hx == hy, (x["query"], hx, hy)
EOF
}
n=0
for q in "--text a_horse -k 20" "--image $photos/horse.png -k 3" "--image $photos/chelsea.png --table semantic -k 5" \
  "--queries $work/queries.txt -k 4" "--text x -k 1"; do
  n=$((n + 1))
  want=0
  case $q in *queries*) want=3 ;; esac # one query image is missing
  check "query $n on the index" run $want search "$work/single" $q --json --device cpu
  cp "$work/out" "$work/single_$n.json"
  check "query $n on the set file" run $want search "$work/photos.set" $q --json --device cpu
  cp "$work/out" "$work/set_$n.json"
  check "... answers as the index" same_hits "$work/single_$n.json" "$work/set_$n.json"
done
check "the batch on the folder of shards" run 3 search "$work/shards" --queries "$work/queries.txt" -k 4 --json \
  --device cpu
check "... answers as the index" same_hits "$work/single_4.json" "$work/out"
check "the duplicate pictures tie, ordered by path" python3 -c '
import json, sys; r = json.loads(open(sys.argv[1]).readline())["results"]
assert r[0]["score"] == r[1]["score"] and r[0]["path"] < r[1]["path"], r[:2]
assert r[0]["path"].endswith("/photos/horse.png"), r[0]' "$work/set_2.json"
check "set hits name their shard" python3 -c '
import json, sys
for l in open(sys.argv[1]):
    for h in json.loads(l)["results"]:
        assert h["shard"] in (0, 1, 2) and h["row"] >= 0, h' "$work/set_1.json"

# ---- adding files moves none ----
before=$(cd "$work/shards" && cat s000*/chunk-*.rows.txt | cut -f4 | sort | md5sum)
cp "$img/coins.png" "$photos/sub/coins.png"
cp "$img/brick.png" "$photos/brick.png"
for i in 0 1 2; do "$bin" index -o "$work/shards/s000$i" --device cpu >/dev/null 2>&1; done
check "new files go to one shard each, the others stay" python3 - "$work/shards" <<'EOF'
import glob, sys
rows = {}
for i in range(3):
    for f in glob.glob(sys.argv[1] + "/s%04d/chunk-*.rows.txt" % i):
        for l in open(f, "rb"):
            rows.setdefault(l.rstrip(b"\n").split(b"\t")[3], []).append(i)
assert all(len(v) == 1 for v in rows.values()), rows
assert len(rows) == 13, len(rows)
EOF
check "... and no row was removed" python3 -c '
import glob, sys
tomb = glob.glob(sys.argv[1] + "/s000*/chunk-*.tombstones.txt")
assert not tomb, tomb' "$work/shards"
rm "$photos/sub/coins.png" "$photos/brick.png"
for i in 0 1 2; do "$bin" index -o "$work/shards/s000$i" --device cpu >/dev/null 2>&1; done

# ---- search --mpi ----
if [ "$mpiexec" = none ]; then
  check "search --mpi in a build without MPI" run 1 search "$work/photos.set" --mpi --text x --device cpu
  check "... says so" contains err "built without MPI"
  echo "SKIPPED: mpirun tests (this build has no MPI)"
  finish
  exit
fi
# Open MPI refuses root unless told; containers often lack the kernel's cross-memory attach.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
# Under AddressSanitizer (make test-cpu-sanitize) leaks are not checked in these runs: Open MPI's
# components leak at exit from modules it has unloaded, which LeakSanitizer can neither name
# nor suppress (test_index_set covers the library's side of the distributed search).
mpi() { # mpi RANKS ARGS...: imgsearch ARGS under mpirun; stdout, stderr in $work/out, $work/err
  local ranks=$1; shift
  ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
    timeout 300 "$mpiexec" -n "$ranks" --oversubscribe "$bin" "$@" >"$work/out" 2>"$work/err"
}
mpi 3 search "$work/photos.set" --mpi --queries "$work/queries.txt" -k 4 --json --device cpu
check "mpirun -n 3: exit 3 (one query image is missing)" test $? -eq 3
check "... answers as the index" same_hits "$work/single_4.json" "$work/out"
check "... byte for byte as one process over the set" cmp "$work/set_4.json" "$work/out"
check "... reports the missing query image once" test "$(grep -c 'missing.png' "$work/err")" -eq 1
for run in "2 1 --text a_horse -k 20" "4 2 --image $photos/horse.png -k 3" "2 3 --image $photos/chelsea.png --table semantic -k 5" \
  "4 5 --text x -k 1"; do
  set -- $run
  ranks=$1 n=$2
  shift 2
  mpi $ranks search "$work/photos.set" --mpi "$@" --json --device cpu
  check "mpirun -n $ranks, query $n: exit 0" test $? -eq 0
  check "... answers as the index" same_hits "$work/single_$n.json" "$work/out"
done
mpi 2 search "$work/single" --mpi --text a_horse -k 20 --json --device cpu
check "mpirun -n 2 over a single index (rank 1 holds nothing)" test $? -eq 0
check "... answers as the index" same_hits "$work/single_1.json" "$work/out"
printf '{"format": "imgsearch-index-set", "version": 1, "shards": ["shards/s0000", "shards/s0001", "shards/gone"]}' \
  >"$work/gone.set"
mpi 3 search "$work/gone.set" --mpi --text a_horse --json --device cpu
check "a missing shard fails the run" test $? -ne 0
check "... naming its rank and the shard" grep -qF "imgsearch: rank 2: shard 2 (" "$work/err"
check "... and prints no results" test ! -s "$work/out"
cp -R "$work/shards" "$work/shards_bad"
python3 -c '
import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[-3] ^= 0x40; open(p, "wb").write(b)' \
  "$work/shards_bad/s0001/chunk-000000.visual.npy"
mpi 3 search "$work/shards_bad" --mpi --image "$photos/horse.png" --json --device cpu
check "a corrupted table fails the run" test $? -ne 0
check "... naming its rank and the file" grep -qF "imgsearch: rank 1: the visual table: shard 1 (" "$work/err"
check "... (the CRC)" grep -qF "chunk-000000.visual.npy: the CRC-32 is not the manifest's" "$work/err"
check "... and prints no results" test ! -s "$work/out"
finish
