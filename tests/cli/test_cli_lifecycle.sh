#!/usr/bin/env bash
# test_cli_lifecycle.sh: an index over time (docs/FORMAT.md, "The index"), end to
# end on the CPU with a full-size synthetic Inception-v3 and the tiny BERT:
# - refusals before anything is created: a missing input folder;
# - change, delete, fix a failed file, add one, re-run with no settings (the
#   manifest remembers them): the live rows and the search results equal a
#   fresh index of the final folder, before and after a compaction; a flag
#   that contradicts the index is refused naming both values;
# - --verify-content: a file changed in place with its mtime kept;
# - one writer: two runs started together (one refused naming the holder,
#   the other complete); a writer killed with SIGKILL, then a new one takes the
#   lock over and removes the killed one's temporary files;
# - kill -9 at random moments with --commit-every 2: the resumed index equals an
#   uninterrupted one, and at most the last uncommitted interval was lost;
# - kill -9 inside a compaction (the crash hook) at several points and inside
#   an update's tombstones: the old index or the new, never a broken one;
# - paths: indexed from one folder, searched from another, every result exists;
#   p, ./p and /abs/p are one root; --relative-to;
# - a queries file with comments, escapes and an unreadable image (exit 3);
# - info INDEX; a version-1 index: searched with a note, refused to writers,
#   upgraded by one command;
# - a full disk (a small tmpfs; SKIPPED where it cannot be mounted): a clear
#   error, the index opens and searches, and resumes once space is freed.
# tests/cli/index_live.py reads the indexes from docs/FORMAT.md alone.
# usage: test_cli_lifecycle.sh IMGSEARCH FIXTURES_DIR IMGSEARCH_CRASH_HOOK
set -u
bin=$1 fixtures=$2 crash_bin=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cli_check.sh"
if ! python3 -c 'import numpy' 2>/dev/null; then
  echo "SKIPPED: numpy is needed to read the indexes"
  exit 77
fi
work=$(cd "$work" && pwd -P) # the index stores canonical paths
img=$fixtures/images
live() { python3 "$here/index_live.py" "$@"; }
manifest() { python3 -c 'import json, sys; m = json.load(open(sys.argv[1] + "/manifest.json")); print(eval(sys.argv[2]))' "$@"; }

check "synthetic image model" run 0 convert --synthetic -o "$work/iv3.isw"
check "text model" run 0 convert "$fixtures/hf_tiny_bert" -o "$work/text.isw"

# ---- refusals before anything is created ----
check "a missing input folder" run 1 index "$work/no_such_folder" -o "$work/idx_typo" --image-model "$work/iv3.isw" \
  --device cpu
check "... says so in one line" one_line
check "... naming it" contains err "input '$work/no_such_folder': No such file or directory"
check "... and creates nothing" test ! -e "$work/idx_typo"
check "a new index needs a model" run 2 index "$work" -o "$work/idx_typo"
check "... and creates nothing" test ! -e "$work/idx_typo"

# ---- change, delete, fix a failed file, add one ----
photos=$work/photos
mkdir -p "$photos/sub"
for f in horse.png chelsea.png jpg_420.jpg png_rgb8.png webp_lossy.webp gif_palette.gif bmp_rgb24.bmp; do
  cp "$img/$f" "$photos/"
done
cp "$img/tif_rgb_lzw.tif" "$photos/sub/"
cp "$img/bad_truncated.png" "$photos/broken.png"
idx=$work/idx
args=(--image-model "$work/iv3.isw" --text-model "$work/text.isw" --device cpu --batch 2 --threads 2 --chunk-rows 3)
check "first run" run 3 index "$photos" -o "$idx" "${args[@]}"
check "... 8 added, 1 skipped" contains out "indexed 8 images into $idx: 8 added, 0 updated, 0 removed, 0 retried (1 skipped, 0 already there"
check "... the manifest records the root" test "$(manifest "$idx" 'm["roots"]')" = "['$photos']"
check "a run with nothing new" run 0 index -o "$idx" --device cpu
check "... finds it all there (the recorded root, the remembered models)" contains out "(0 skipped, 9 already there"
check "a contradicting flag is refused" run 1 index "$photos" -o "$idx" --device cpu --chunk-rows 4096
check "... naming both values" contains err "its chunks hold 3 rows (--chunk-rows 3), not 4096"
check "another --conse-top is refused" run 1 index "$photos" -o "$idx" --device cpu --conse-top 5
check "... naming both values" contains err "(--conse-top 10), not 5"
check "flags that only change the speed are allowed" run 0 index "$photos" -o "$idx" --device cpu --batch 5 --threads 1
cp -a "$idx" "$work/idx_v0"

cp "$img/jpg_gray.jpg" "$photos/jpg_420.jpg"       # overwritten with another picture
rm "$photos/sub/tif_rgb_lzw.tif"                   # deleted
cp "$img/png_rgba8.png" "$photos/broken.png"       # the failed file fixed
cp "$img/coffee.png" "$photos/new.png"             # a new one
check "the update" run 0 index "$photos" -o "$idx" --device cpu
check "... says what changed" contains out "indexed 3 images into $idx: 1 added, 1 updated, 1 removed, 1 retried (0 skipped, 6 already there"
check "the changed file finds itself first" run 0 search "$idx" --image "$photos/jpg_420.jpg" -k 20 --json --device cpu
check "... at score 1" python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).readline())["results"]
assert r[0]["path"] == sys.argv[2] and r[0]["score"] > 0.9999, r[0]
assert len(r) == 9 and not any("tif_rgb_lzw" in x["path"] for x in r), [x["path"] for x in r]' "$work/out" "$photos/jpg_420.jpg"
check "the old embedding of the changed file is gone" run 0 search "$idx" --image "$img/jpg_420.jpg" -k 1 --json --device cpu
check "... (its old picture no longer finds it at score 1)" python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).readline())["results"]
assert not (r[0]["path"].endswith("/jpg_420.jpg") and r[0]["score"] > 0.9999), r' "$work/out"
check "info after the update" run 0 info "$idx"
check "... rows live and tombstoned" contains out "rows        9 live, 2 tombstoned (11 stored"
check "... failures" contains out "failures    0 live, 1 tombstoned"
check "info --json" run 0 info "$idx" --json
check "... as JSON" python3 -c '
import json, sys
i = json.load(open(sys.argv[1]))
assert i["version"] == 2 and i["rows"] == {"live": 9, "tombstoned": 2, "stored": 11}, i
assert i["failures"]["live"] == 0 and i["failures"]["tombstoned"] == 1 and i["failures"]["by_reason"] == [], i
assert i["roots"] == [sys.argv[2]] and i["committed"].endswith("Z") and i["disk_bytes"] > 0, i
assert i["image_model"]["name"] == "iv3.isw" and i["dtype"] == "f16" and i["chunk_rows"] == 3, i' "$work/out" "$photos"
check "info --verify" run 0 info "$idx" --verify
check "... checks the tables" contains out "every table's CRC-32 ok"

fresh_args=("${args[@]}")
check "a fresh index of the final folder" run 0 index "$photos" -o "$work/idx_fresh" "${fresh_args[@]}"
check "the updated index holds the fresh one's rows" live --same-set "$idx" "$work/idx_fresh"
{ for f in "$photos"/*.* ; do echo "@$f"; done; echo "a horse"; echo "a cup of coffee"; } >"$work/all_queries.txt"
# Same rows, same queries: the same paths and scores (within fp32 summation order).
same_results() {
  "$bin" search "$1" --queries "$work/all_queries.txt" -k 20 --json --device cpu >"$work/r1" 2>/dev/null &&
  "$bin" search "$2" --queries "$work/all_queries.txt" -k 20 --json --device cpu >"$work/r2" 2>/dev/null &&
  "$bin" search "$1" --queries "$work/all_queries.txt" -k 20 --json --device cpu --table semantic >>"$work/r1" 2>/dev/null &&
  "$bin" search "$2" --queries "$work/all_queries.txt" -k 20 --json --device cpu --table semantic >>"$work/r2" 2>/dev/null &&
  python3 - "$work/r1" "$work/r2" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 2 * 11, (len(a), len(b))
for x, y in zip(a, b):
    assert x["query"] == y["query"] and len(x["results"]) == len(y["results"]) == 9, (x, y)
    for p, q in zip(x["results"], y["results"]):
        assert abs(p["score"] - q["score"]) < 1e-6, (x["query"], p, q)
    key = lambda r: (-round(r["score"], 5), r["path"])  # ties may come in either row order
    assert [r["path"] for r in sorted(x["results"], key=key)] == [r["path"] for r in sorted(y["results"], key=key)], (x, y)
EOF
}
check "search results equal the fresh index's" same_results "$idx" "$work/idx_fresh"

# ---- kill -9 inside an update: at its tombstones, then resumed ----
cp -a "$work/idx_v0" "$work/idx_crash_update"
next=$(manifest "$work/idx_crash_update" 'm["next_chunk"]')
IMS_TEST_CRASH=chunk:$next:tombstones "$crash_bin" index "$photos" -o "$work/idx_crash_update" --device cpu >/dev/null 2>&1 &
{ wait $!; } 2>/dev/null
check "killed in the update's first tombstones" test $? -eq 137
check "... the index is whole" live --check "$work/idx_crash_update"
check "... and resumes" run 0 index "$photos" -o "$work/idx_crash_update" --device cpu
check "... to the fresh index's rows" live --same-set "$work/idx_crash_update" "$work/idx_fresh"

# ---- compaction: killed at several points (old or new, never broken), then whole ----
cp -a "$idx" "$work/idx_before_compact"
next=$(manifest "$idx" 'm["next_chunk"]')
for point in chunk:$next:compact chunk:$((next + 1)):compact chunk:$next:compacted chunk:$next:pruned; do
  rm -rf "$work/idx_c" && cp -a "$work/idx_before_compact" "$work/idx_c"
  IMS_TEST_CRASH=$point "$crash_bin" index --compact "$work/idx_c" >/dev/null 2>&1 &
  { wait $!; } 2>/dev/null
  check "compaction killed at $point" test $? -eq 137
  check "$point: the index is whole" live --check "$work/idx_c"
  check "$point: it holds the same live rows" live --same-set "$work/idx_c" "$work/idx_fresh"
  if cmp -s "$work/idx_c/manifest.json" "$work/idx_before_compact/manifest.json"; then state=old; else state=new; fi
  case $point in *:compact) want=old ;; *) want=new ;; esac
  check "$point: the $want index ($state)" test "$state" = "$want"
  check "$point: it searches" run 0 search "$work/idx_c" --image "$photos/horse.png" -k 3 --device cpu
  check "$point: a writer removes the leftovers" run 0 index "$photos" -o "$work/idx_c" --device cpu
  check "$point: ... no unlisted chunk file stays" python3 -c '
import json, os, re, sys
d = sys.argv[1]
ids = {c["id"] for c in json.load(open(os.path.join(d, "manifest.json")))["chunks"]}
for f in os.listdir(d):
    m = re.match(r"chunk-(\d+)\.", f)
    assert not ".tmp." in f and (not m or int(m.group(1)) in ids), f' "$work/idx_c"
done
check "compaction" run 0 index --compact "$idx"
check "... reports it" contains out "compacted $idx: 9 rows and 0 failures kept, 2 rows and 1 failures dropped"
check "... no tombstones left" test "$(manifest "$idx" 'm["tombstones"]')" = "{'rows': 0, 'failures': 0}"
check "... the same live rows, in the same order" live --same "$idx" "$work/idx_c"
check "compacted: search results equal the fresh index's" same_results "$idx" "$work/idx_fresh"
check "compaction takes no other flags" run 2 index --compact "$idx" --image-model "$work/iv3.isw"

# ---- --verify-content: a file changed in place, its size and mtime kept ----
check "--verify-content records CRC-32s (rows without one are indexed again)" run 0 index "$photos" -o "$idx" \
  --device cpu --verify-content
check "... every row once" contains out "9 updated"
python3 - "$photos/bmp_rgb24.bmp" <<'EOF'
import os, sys
p = sys.argv[1]
st = os.stat(p)
b = bytearray(open(p, "rb").read())
b[-5] ^= 0xff  # a pixel byte: still a valid BMP, the same size
open(p, "wb").write(b)
os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
EOF
check "without --verify-content the change is not seen" run 0 index "$photos" -o "$idx" --device cpu
check "... nothing updated" contains out "0 updated"
check "with --verify-content it is" run 0 index "$photos" -o "$idx" --device cpu --verify-content
check "... one updated" contains out "indexed 1 images into $idx: 0 added, 1 updated"

# ---- paths: from another folder; p, ./p and /abs/p; --relative-to ----
(cd "$work" && "$bin" index photos ./photos "$photos" "$photos/" -o idx_rel --image-model iv3.isw --device cpu \
   --threads 2 >"$work/out" 2>"$work/err")
check "p, ./p and /abs/p index the folder once" test $? -eq 0
check "... one root, each file once" python3 -c '
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
assert m["roots"] == [sys.argv[2]] and m["rows"] == 9, (m["roots"], m["rows"])' "$work/idx_rel" "$photos"
(cd / && "$bin" search "$work/idx_rel" --image "$photos/horse.png" -k 20 --json --device cpu >"$work/out" 2>/dev/null)
check "searched from another folder, every result path exists" python3 -c '
import json, os, sys
os.chdir("/tmp")
r = json.loads(open(sys.argv[1]).readline())["results"]
assert len(r) == 9 and all(os.path.isabs(x["path"]) and os.path.exists(x["path"]) for x in r), r' "$work/out"
(cd / && "$bin" search "$work/idx_rel" --image "$photos/horse.png" -k 20 --json --device cpu \
   --relative-to "$photos/sub" >"$work/out" 2>/dev/null)
check "--relative-to: paths that resolve from that folder" python3 -c '
import json, os, sys
os.chdir(sys.argv[2])
r = json.loads(open(sys.argv[1]).readline())["results"]
assert all(x["path"].startswith("../") and os.path.exists(x["path"]) for x in r), r' "$work/out" "$photos/sub"

# ---- queries: comments, escapes, an image that cannot be read ----
cat >"$work/q.txt" <<EOF
# a comment: not a query
a horse
\\# a hash, searched as text

@$photos/horse.png
@$photos/missing.jpg
\\@at, as text
EOF
check "queries with one unreadable image: the others answered, exit 3" run 3 search "$idx" --queries "$work/q.txt" \
  -k 2 --json --device cpu
check "... the image named on stderr" contains err "query image '$photos/missing.jpg'"
check "... in one line" test "$(grep -c missing.jpg "$work/err")" -eq 1
check "... the results" python3 -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert [x["query"] for x in r] == ["a horse", "# a hash, searched as text", {"image": sys.argv[2] + "/horse.png"},
                                   {"image": sys.argv[2] + "/missing.jpg"}, "@at, as text"], r
assert "error" in r[3] and "results" not in r[3] and "missing.jpg" in r[3]["error"], r[3]
assert all(len(x["results"]) == 2 for i, x in enumerate(r) if i != 3), r
h = r[2]["results"][0]
assert h["path"] == sys.argv[2] + "/horse.png" and {"row", "chunk", "offset"} <= set(h), h' "$work/out" "$photos"
check "an empty text query: an error of its own" run 3 search "$idx" --text " " --text "a cat" -k 1 --device cpu
check "... named" contains err "query 1: an empty text query"

# ---- the JSON row, chunk and offset find the vectors ----
check "a search for the row locations" run 0 search "$idx" --image "$photos/horse.png" -k 3 --json --device cpu
check "... row r of the live table is chunk-<chunk>.visual.npy row <offset>" python3 -c '
import json, os, sys
import numpy as np
idx = sys.argv[2]
for h in json.loads(open(sys.argv[1]).readline())["results"]:
    v = np.load(os.path.join(idx, "chunk-%06d.visual.npy" % h["chunk"]))[h["offset"]].astype(np.float64)
    paths = open(os.path.join(idx, "chunk-%06d.rows.txt" % h["chunk"])).read().splitlines()
    assert paths[h["offset"]].split("\t")[3] == h["path"], (h, paths)
    assert abs(np.linalg.norm(v) - 1) < 2e-3, h' "$work/out" "$idx"

# ---- one writer ----
many=$work/many
mkdir -p "$many"
for f in "$img"/jpg_4*.jpg "$img"/jpg_exif*_ii.jpg "$img"/gif_*.gif "$img"/bmp_rgb*.bmp "$img/horse.png"; do
  [ -f "$f" ] && cp "$f" "$many/"
done
n_many=$(ls "$many" | wc -l)
wargs=(--image-model "$work/iv3.isw" --device cpu --batch 2 --threads 2 --commit-every 2)
start=$(date +%s.%N)
check "an uninterrupted reference" run 0 index "$many" -o "$work/idx_ref" "${wargs[@]}"
elapsed=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(date +%s.%N)")
# Two writers started together: one refused at once, naming the holder; the other complete.
("$bin" index "$many" -o "$work/idx_two" "${wargs[@]}" >"$work/out1" 2>"$work/err1"; echo $? >"$work/rc1") &
("$bin" index "$many" -o "$work/idx_two" "${wargs[@]}" >"$work/out2" 2>"$work/err2"; echo $? >"$work/rc2") &
wait
rcs="$(cat "$work/rc1") $(cat "$work/rc2")"
check "two writers together: one refused, one done ($rcs)" test "$rcs" = "0 1" -o "$rcs" = "1 0"
check "... the refusal names the holder" grep -q "is being written by process [0-9]* on host" "$work/err1" "$work/err2"
check "... the other's index is complete" live --same "$work/idx_two" "$work/idx_ref"
# A writer killed: the next one takes its lock over and removes its temporary files.
"$bin" index "$many" -o "$work/idx_stale" "${wargs[@]}" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 300); do [ -f "$work/idx_stale/chunk-000000.rows.txt" ] && break; sleep 0.1; done
kill -9 $pid; { wait $pid; } 2>/dev/null
: >"$work/idx_stale/chunk-000999.visual.npy.tmp.99999"
echo "{" >"$work/idx_stale/manifest.json.tmp.99999"
check "after kill -9 of the writer, a new writer" run 0 index "$many" -o "$work/idx_stale" --device cpu
check "... took the stale lock over" grep -q "^[0-9]*	" "$work/idx_stale/lock"
check "... removed the temporary files" test -z "$(find "$work/idx_stale" -name '*.tmp.*')"
check "... and completed the index" live --same "$work/idx_stale" "$work/idx_ref"
# A reader meanwhile: never blocked, sees the last commit.
"$bin" index "$many" -o "$work/idx_read" "${wargs[@]}" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 300); do [ -s "$work/idx_read/lock" ] && break; sleep 0.1; done
check "a search while a writer runs" run 0 search "$work/idx_read" --image "$many/horse.png" -k 1 --device cpu
wait $pid

# ---- kill -9 at random moments with --commit-every 2 ----
batches=$(( (n_many + 1) / 2 ))
for trial in 1 2 3; do
  rm -rf "$work/idx_k"
  delay=$(python3 -c "import random, sys; print(round(random.uniform(0.3, 0.9) * float(sys.argv[1]), 2))" "$elapsed")
  "$bin" index "$many" -o "$work/idx_k" "${wargs[@]}" >/dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  killed_at=$(date +%s.%N)
  kill -9 $pid 2>/dev/null; { wait $pid; } 2>/dev/null
  status=$?  # 137: killed; else the run had finished first (a loaded machine): nothing was interrupted
  if [ "$status" = 137 ] && [ -f "$work/idx_k/manifest.json" ]; then
    check "kill at ${delay}s: at most the last uncommitted interval lost" python3 -c '
import os, sys
killed, elapsed, batches = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
lost = killed - os.stat(sys.argv[1] + "/manifest.json").st_mtime
bound = 2 + 2 * elapsed / batches + 1  # --commit-every, a batch on either side, scheduling
assert lost <= bound, "%.2f s since the last commit, more than %.2f" % (lost, bound)' \
      "$work/idx_k" "$killed_at" "$elapsed" "$batches"
  fi
  check "kill at ${delay}s: resumed" run 0 index "$many" -o "$work/idx_k" --device cpu
  check "kill at ${delay}s: equals the uninterrupted index" live --same "$work/idx_k" "$work/idx_ref"
done

# ---- a version-1 index: searched with a note, refused to writers, upgraded ----
python3 - "$work/idx_fresh" "$work/idx_v1" "$work" <<'EOF'
import json, os, shutil, sys, urllib.parse
src, dst, base = sys.argv[1:4]
os.mkdir(dst)
m = json.load(open(os.path.join(src, "manifest.json")))
chunks = []
for pos, c in enumerate(m["chunks"]):
    a, b = os.path.join(src, "chunk-%06d." % c["id"]), os.path.join(dst, "chunk-%06d." % pos)
    for t in ("visual.npy", "semantic.npy"):
        shutil.copy(a + t, b + t)
    with open(b + "rows.txt", "wb") as out:  # version 1: paths as given, relative to where index ran
        for line in open(a + "rows.txt", "rb"):
            size, mtime, crc, p = line.rstrip(b"\n").split(b"\t")
            rel = os.path.relpath(urllib.parse.unquote_to_bytes(p), os.fsencode(base))
            out.write(size + b"\t" + mtime + b"\t" + rel + b"\n")
    open(b + "failures.txt", "wb").close()
    chunks.append({"rows": c["rows"], "failures": 0})
for k in ("committed", "roots", "settings", "tombstones", "next_chunk"):
    del m[k]
m["version"], m["chunks"], m["failures"] = 1, chunks, 0
json.dump(m, open(os.path.join(dst, "manifest.json"), "w"))
shutil.copy(os.path.join(src, "classes.npy"), dst)
EOF
(cd "$work" && "$bin" search idx_v1 --image "$photos/horse.png" -k 1 --device cpu >"$work/out" 2>"$work/err")
check "a version-1 index is searched" test $? -eq 0
check "... with a note on upgrading" contains err "is index format version 1"
check "... its paths as stored" contains out "photos/horse.png"
check "adding to a version-1 index is refused" run 1 index "$photos" -o "$work/idx_v1" --device cpu
check "... saying how to upgrade" contains err "imgsearch index --upgrade INDEX"
(cd "$work" && "$bin" index --upgrade idx_v1 >"$work/out" 2>"$work/err")
check "upgrade: one command" test $? -eq 0
check "... reports it" contains out "upgraded idx_v1 to format version 2"
check "... the fresh index's rows, absolute" live --same "$work/idx_v1" "$work/idx_fresh"
check "... then a run finds every file there" run 0 index "$photos" -o "$work/idx_v1" --device cpu
check "... nothing added" contains out "indexed 0 images"
check "a newer version is refused" python3 -c '
import json, sys
p = sys.argv[1] + "/manifest.json"
m = json.load(open(p)); m["version"] = 3; json.dump(m, open(p, "w"))' "$work/idx_v1"
check "... by search" run 1 search "$work/idx_v1" --text horse --device cpu
check "... naming the versions" contains err "index format version 3: this build reads versions 1 and 2"

# ---- a full disk ----
small=$work/small
mkdir -p "$small"
if mount -t tmpfs -o size=192k tmpfs "$small" 2>/dev/null; then
  check "a disk that fills up mid-run" run 1 index "$many" -o "$small/idx" "${wargs[@]}" --chunk-rows 2
  check "... a clear error" contains err "No space left on device"
  check "... in one line, the last" python3 -c '
import sys
lines = open(sys.argv[1]).read().splitlines()
assert "No space left on device" in lines[-1] and sum("No space" in l for l in lines) == 1, lines' "$work/err"
  check "... the index is whole" live --check "$small/idx"
  check "... and opens and searches" run 0 search "$small/idx" --image "$many/horse.png" -k 1 --device cpu
  mount -o remount,size=16m "$small"
  check "space freed: it resumes" run 0 index "$many" -o "$small/idx" --device cpu
  check "... to the uninterrupted index" live --same "$small/idx" "$work/idx_ref"
  umount "$small"
else
  echo "SKIPPED (part): the full-disk checks need to mount a tmpfs (root); they did not run"
fi

finish
