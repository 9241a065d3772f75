#!/usr/bin/env bash
# test_cli_index.sh: `imgsearch index` and `imgsearch search` end to end on the
# CPU backend, with a full-size synthetic Inception-v3 (convert --synthetic) and
# the tiny 2-layer BERT fixture as the text model:
# - a folder mixing good images, every kind of bad file, a non-image, a nested
#   folder and a symlink loop: every good image indexed, every bad one reported
#   with its reason, exit status 3;
# - the index files as Python reads them (numpy, json), the rows unit-norm;
# - search by image (the image itself ranks first, score ~1), by text, from a
#   queries file, in every output format, checked against a brute force over the
#   stored table;
# - resume: the indexer killed (SIGKILL) after a delay, and inside a chunk's
#   commit (IMS_TEST_CRASH: after each of the chunk's files, in a test build
#   of the command with the crash points live), then run again, gives the same
#   rows and embeddings as an uninterrupted run; the product command ignores
#   IMS_TEST_CRASH; a second run adds nothing; a new file is added alone.
# usage: test_cli_index.sh IMGSEARCH FIXTURES_DIR IMGSEARCH_CRASH_HOOK
set -u
bin=$1 fixtures=$2 crash_bin=$3
. "$(dirname "$0")/cli_check.sh"
have_numpy=0
python3 -c 'import numpy' 2>/dev/null && have_numpy=1

# ---- models ----
check "synthetic image model" run 0 convert --synthetic -o "$work/iv3.isw"
# The tiny 2-layer BERT fixture: this test is about the pipeline, and a real
# model would embed the 1000 class names again in every resumed run.
check "text model" run 0 convert "$fixtures/hf_tiny_bert" -o "$work/text.isw"

# ---- the folder ----
photos=$work/photos
mkdir -p "$photos/nested/deeper"
good="horse.png png_rgb8.png jpg_gray.jpg jpg_420.jpg webp_lossy.webp tif_rgb_lzw.tif gif_palette.gif bmp_rgb24.bmp"
for f in $good; do cp "$fixtures/images/$f" "$photos/"; done
cp "$fixtures/images/jpg_444.jpg" "$photos/nested/deeper/"
cp "$fixtures/images/bad_truncated.png" "$fixtures/images/bad_crc.png" "$photos/"
cp "$fixtures/images/bad_no_eoi.jpg" "$photos/nested/"
cp "$fixtures/images/bad_random.bin" "$photos/random.jpg"   # not an image, named like one
cp "$fixtures/images/bad.gif" "$photos/gif_named.png"       # a GIF named .png: decoded by its content
cp "$fixtures/images/bad_tif_truncated.tif" "$photos/cut.TIFF" # a broken TIFF (the extension in any case)
: >"$photos/empty.jpg"                                      # zero bytes
echo "notes" >"$photos/README.txt"                          # not an image name: ignored
echo "notes" >"$photos/nested/more.TXT"                      # ignored, counted with .txt
: >"$photos/phone.heic"; : >"$photos/layers.psd"; : >"$photos/Makefile"  # ignored
ln -s "$photos" "$photos/nested/loop"                       # a symlink loop
ln -s "$photos/missing.jpg" "$photos/dangling.jpg"          # a dangling link
n_good=$(( $(echo $good | wc -w) + 2 ))  # + nested/deeper/jpg_444.jpg, gif_named.png
n_bad=7  # bad_truncated.png bad_crc.png random.jpg cut.TIFF empty.jpg dangling.jpg nested/bad_no_eoi.jpg

idx=$work/index
index_args=(index "$photos" -o "$idx" --image-model "$work/iv3.isw" --text-model "$work/text.isw"
            --device cpu --batch 2 --chunk-rows 2 --threads 2)
check "index exits 3 when files were skipped" run 3 "${index_args[@]}"
check "summary on stdout" contains out "indexed $n_good images"
check "ignored files counted by extension" contains err "ignored: 2 .txt, 1 (no extension), 1 .heic, 1 .psd)"
check "ignored files not listed without --verbose" lacks err "ignored $photos/README.txt"
for f in bad_truncated.png bad_crc.png random.jpg cut.TIFF empty.jpg dangling.jpg; do
  check "skipped $f reported" contains err "$f"
done
check "gif_named.png decoded by content" lacks err "gif_named.png"
check "index --verbose" run 3 index "$photos" -o "$work/index_verbose" --image-model "$work/iv3.isw" --device cpu \
  --threads 2 --verbose
check "--verbose lists the ignored files" contains err "imgsearch: ignored $photos/nested/more.TXT"
check "--verbose lists files without an extension" contains err "imgsearch: ignored $photos/Makefile"
check "--max-pixels refuses larger images" run 3 index "$photos" -o "$work/index_small" \
  --image-model "$work/iv3.isw" --device cpu --threads 2 --max-pixels 200
check "--max-pixels names the option" contains err "over the limit of 200 (--max-pixels)"
check "--max-pixels warns above half" contains err "imgsearch: warning: $photos/tif_rgb_lzw.tif: 13 x 11 = 143 pixels, over 100"
check "--max-pixels 0 is a usage error" run 2 index "$photos" -o "$work/index_small" --image-model "$work/iv3.isw" \
  --max-pixels 0

if [ "$have_numpy" = 1 ]; then
  check "index files read by numpy" python3 - "$idx" "$n_good" "$n_bad" <<'EOF'
import json, sys, glob, os, urllib.parse
import numpy as np
idx, n_good, n_bad = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = json.load(open(os.path.join(idx, "manifest.json")))
assert m["format"] == "imgsearch-index" and m["version"] == 2, m
assert m["roots"] == [os.path.realpath(os.path.join(idx, "..", "photos"))], m["roots"]
assert m["rows"] == n_good, (m["rows"], n_good)
assert m["failures"] == n_bad, (m["failures"], n_bad)
assert sum(c["rows"] for c in m["chunks"]) == m["rows"]
rows, paths = [], []
for c in m["chunks"]:
    i = c["id"]
    v = np.load(os.path.join(idx, "chunk-%06d.visual.npy" % i), mmap_mode="r")
    s = np.load(os.path.join(idx, "chunk-%06d.semantic.npy" % i), mmap_mode="r")
    assert v.shape == (c["rows"], m["visual_dim"]) and v.dtype == np.float16, v.shape
    assert s.shape == (c["rows"], m["semantic_dim"]), s.shape
    norms = np.linalg.norm(np.asarray(v, dtype=np.float64), axis=1)
    assert np.all(np.abs(norms - 1) < 2e-3), norms
    for line in open(os.path.join(idx, "chunk-%06d.rows.txt" % i), "rb"):
        size, mtime, crc, p = line.rstrip(b"\n").split(b"\t")
        p = urllib.parse.unquote_to_bytes(p)
        assert os.path.isabs(p) and os.path.getsize(p) == int(size) and crc == b"-", p
        paths.append(p)
assert len(paths) == n_good and len(set(paths)) == n_good, paths
assert paths == sorted(paths), paths
cls = np.load(os.path.join(idx, "classes.npy"))
assert cls.shape == (1000, m["semantic_dim"]), cls.shape
EOF
fi

# ---- search ----
q=$photos/horse.png
check "search by image" run 0 search "$idx" --image "$q" -k 3 --device cpu
check "table header" contains out "rank"
check "the image finds itself" python3 -c '
import sys
lines = open(sys.argv[1]).read().splitlines()
row = lines[2].split()
assert row[0] == "1" and row[2] == sys.argv[2] and float(row[1]) > 0.999, lines' "$work/out" "$q"
check "search by text, JSON" run 0 search "$idx" --text "a horse in a field" -k 4 --json --device cpu
cp "$work/out" "$work/text.json"
printf 'a photo of a dog\n@%s\n\nstriped cat\n' "$q" >"$work/queries.txt"
check "queries file" run 0 search "$idx" --queries "$work/queries.txt" -k 2 --json --device cpu
cp "$work/out" "$work/queries.json"
check "image query on the semantic table" run 0 search "$idx" --image "$q" --table semantic -k 2 --json --device cpu
check "no query is a usage error" run 2 search "$idx"
check "a missing index" run 1 search "$work/nope" --text x
check "one-line error" one_line
check "a query image that cannot be read: exit 3" run 3 search "$idx" --image "$photos/random.jpg" --image "$q" --device cpu
check "the bad query image is named" contains err "query image '$photos/random.jpg'"
check "... and the other query is answered" contains out "   1    1.0000  $q"
if [ "$have_numpy" = 1 ]; then
  check "results equal a brute force over the stored tables" python3 - "$idx" "$work/text.json" "$work/queries.json" "$q" <<'EOF'
import json, sys, os
import numpy as np
idx, text_json, queries_json, q = sys.argv[1:5]
m = json.load(open(os.path.join(idx, "manifest.json")))
def table(kind):
    return np.concatenate([np.load(os.path.join(idx, "chunk-%06d.%s.npy" % (c["id"], kind))).astype(np.float32)
                           for c in m["chunks"]])
def paths():
    import urllib.parse
    out = []
    for c in m["chunks"]:
        for line in open(os.path.join(idx, "chunk-%06d.rows.txt" % c["id"]), "rb"):
            out.append(urllib.parse.unquote_to_bytes(line.rstrip(b"\n").split(b"\t")[3]).decode())
    return out
P = paths()
V = table("visual")
V = V / np.linalg.norm(V, axis=1, keepdims=True)
res = [json.loads(l) for l in open(queries_json)]
assert len(res) == 3, res
assert [r["query"] for r in res] == ["a photo of a dog", {"image": q}, "striped cat"], res
assert res[1]["table"] == "visual" and res[0]["table"] == "semantic"
# the image query: brute force over the visual table, the query's own stored row
qi = P.index(q)
scores = V @ V[qi]
order = sorted(range(len(P)), key=lambda i: (-scores[i], i))[:2]
got = [P.index(r["path"]) for r in res[1]["results"]]
assert got[0] == order[0] == qi, (got, order)
for r, i in zip(res[1]["results"], got):
    assert abs(r["score"] - scores[i]) < 2e-3, (r, scores[i])
for r in [json.loads(l) for l in open(text_json)] + [res[0], res[2]]:
    ranks = [x["rank"] for x in r["results"]]
    assert ranks == list(range(1, len(ranks) + 1)), r
    s = [x["score"] for x in r["results"]]
    assert s == sorted(s, reverse=True), r
    assert len(set(x["path"] for x in r["results"])) == len(s), r
EOF
fi

# ---- ConSE's class count: recorded, used by search, and a resume must keep it ----
mkdir -p "$work/few"
cp "$fixtures/images/horse.png" "$fixtures/images/chelsea.png" "$fixtures/images/jpg_420.jpg" "$work/few/"
few_args=(index "$work/few" -o "$work/index_top3" --image-model "$work/iv3.isw" --text-model "$work/text.isw"
          --device cpu --batch 2 --threads 2 --conse-top 3)
check "index with --conse-top 3" run 0 "${few_args[@]}"
check "the manifest records conse_top" grep -q '"conse_top": 3' "$work/index_top3/manifest.json"
check "the manifest records the precision" grep -q '"precision": "fp32"' "$work/index_top3/manifest.json"
check "a resume with another --conse-top is refused" run 1 "${few_args[@]}" --conse-top 4
check "the refusal names both values" contains err "--conse-top 3), not 4"
check "image query on the semantic table (conse_top 3)" run 0 search "$work/index_top3" --image "$work/few/horse.png" \
  --table semantic -k 3 --json --device cpu
cp "$work/out" "$work/top3.json"
check "the query's logits" run 0 embed-image "$work/few/horse.png" --image-model "$work/iv3.isw" --what logits \
  -o "$work/horse_logits.npy" --device cpu
if [ "$have_numpy" = 1 ]; then
  check "the query is mixed as the rows were (ConSE over 3 classes)" python3 - "$work/index_top3" "$work/top3.json" "$work/horse_logits.npy" <<'EOF'
import json, sys, os, urllib.parse
import numpy as np
idx, res_json, logits_npy = sys.argv[1:4]
m = json.load(open(os.path.join(idx, "manifest.json")))
top = m["conse_top"]
cls = np.load(os.path.join(idx, "classes.npy")).astype(np.float64)
z = np.load(logits_npy)[0].astype(np.float64)
p = np.exp(z - z.max()); p /= p.sum()
best = sorted(range(len(p)), key=lambda c: (-p[c], c))[:top]
q = sum(p[c] * cls[c] for c in best)
q /= np.linalg.norm(q)
S = np.concatenate([np.load(os.path.join(idx, "chunk-%06d.semantic.npy" % c["id"])).astype(np.float64)
                    for c in m["chunks"]])
S /= np.linalg.norm(S, axis=1, keepdims=True)
P = []
for c in m["chunks"]:
    for line in open(os.path.join(idx, "chunk-%06d.rows.txt" % c["id"]), "rb"):
        P.append(urllib.parse.unquote_to_bytes(line.rstrip(b"\n").split(b"\t")[3]).decode())
scores = S @ q
order = sorted(range(len(P)), key=lambda i: (-scores[i], i))
# f32 sums over f16 rows agree with this to ~1e-7; mixing 10 classes instead
# of 3 moves these scores by ~4e-5 and changes their order.
r = json.loads(open(res_json).read())
assert r["table"] == "semantic", r
got = [x["path"] for x in r["results"]]
assert got[0] == P[order[0]], (got, [P[i] for i in order])
for x in r["results"]:
    assert abs(x["score"] - scores[P.index(x["path"])]) < 1e-5, (x, scores)
EOF
fi

# ---- resume after kill -9 ----
cp -R "$idx" "$work/index_ref"
for delay in 1 4; do
  rm -rf "$work/index_k"
  timeout -s KILL "$delay" "$bin" "${index_args[@]/$idx/$work/index_k}" >/dev/null 2>&1 &
  { wait $!; } 2>/dev/null  # no "Killed" notice
  "$bin" "${index_args[@]/$idx/$work/index_k}" >"$work/out" 2>"$work/err"
  rc=$?  # 3: failures recorded in this run; 0: the killed run had committed them all
  check "resume after SIGKILL at ${delay}s (exit $rc)" test "$rc" = 3 -o "$rc" = 0
  check "no temporary files left behind" test -z "$(find "$work/index_k" -name '*.tmp.*' 2>/dev/null)"
  for f in "$work/index_ref"/chunk-*.rows.txt "$work/index_ref"/chunk-*.failures.txt; do
    check "resumed $(basename "$f") equals the uninterrupted run's" cmp -s "$f" "$work/index_k/$(basename "$f")"
  done
  if [ "$have_numpy" = 1 ]; then
    check "resumed tables equal the uninterrupted run's" python3 -c '
import sys, glob, os
import numpy as np
a, b = sys.argv[1:3]
fa = sorted(glob.glob(os.path.join(a, "chunk-*.npy")))
assert fa and [os.path.basename(x) for x in fa] == sorted(os.path.basename(x) for x in glob.glob(os.path.join(b, "chunk-*.npy")))
for x in fa:
    assert np.array_equal(np.load(x), np.load(os.path.join(b, os.path.basename(x)))), x' "$work/index_ref" "$work/index_k"
  fi
done

# ---- resume after a kill inside a chunk's commit (IMS_TEST_CRASH, tests/common/crash_hook.c) ----
rm -rf "$work/index_c"
IMS_TEST_CRASH=chunk:0:visual "$bin" "${index_args[@]/$idx/$work/index_c}" >/dev/null 2>&1
rc=$?
check "the product command has no crash hook (exit $rc)" test "$rc" = 3 -o "$rc" = 0
for point in chunk:0:visual chunk:1:semantic chunk:1:rows chunk:2:failures; do
  rm -rf "$work/index_c"
  IMS_TEST_CRASH=$point "$crash_bin" "${index_args[@]/$idx/$work/index_c}" >/dev/null 2>&1 &
  { wait $!; } 2>/dev/null  # no "Killed" notice
  check "killed at $point" test $? -eq 137
  "$bin" "${index_args[@]/$idx/$work/index_c}" >"$work/out" 2>"$work/err"
  rc=$?
  check "resume after the kill at $point (exit $rc)" test "$rc" = 3 -o "$rc" = 0
  for f in "$work/index_ref"/chunk-*; do
    case $f in
      *.npy) [ "$have_numpy" = 1 ] || continue
             check "$point: $(basename "$f")" python3 -c 'import sys, numpy as np; assert np.array_equal(np.load(sys.argv[1]), np.load(sys.argv[2]))' "$f" "$work/index_c/$(basename "$f")" ;;
      *) check "$point: $(basename "$f")" cmp -s "$f" "$work/index_c/$(basename "$f")" ;;
    esac
  done
done

# ---- incremental ----
check "a second run adds nothing" run 0 "${index_args[@]}"
check "nothing to do" contains err "0 images to index"
cp "$fixtures/images/png_rgba8.png" "$photos/new.png"
check "a new file is added alone" run 0 "${index_args[@]}"
check "one image indexed" contains out "indexed 1 images"
check "another image model is refused" run 1 index "$photos" -o "$idx" --image-model "$work/text.isw" --device cpu
finish
