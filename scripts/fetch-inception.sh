#!/usr/bin/env bash
# fetch-inception.sh: downloads torchvision's published Inception-v3 checkpoint
# (inception_v3_google-0cc3c7bd.pth, ImageNet-1k, 104 MB) and prints its path as
# the last line of stdout. Exit status 1, with the reason on stderr, when it
# cannot be downloaded (no network, or download.pytorch.org unreachable).
#
#   scripts/fetch-inception.sh [DEST_DIR]     default: build/models
#
# Idempotent; the file is checked against the SHA-256 prefix torchvision puts
# in its name (torch.hub's check_hash convention).
set -euo pipefail
URL=https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth
PREFIX=0cc3c7bd
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$root/build/models}"
file="$dest/$(basename "$URL")"
log() { echo "fetch-inception: $*" >&2; }
ok() { [ -f "$1" ] && sha256sum "$1" | cut -c1-8 | grep -qx "$PREFIX"; }

mkdir -p "$dest"
if ! ok "$file"; then
  log "downloading $URL"
  if ! curl -fsSL --retry 2 --connect-timeout 15 -o "$file.partial" "$URL"; then
    rm -f "$file.partial"
    log "cannot download $URL (no network or host unreachable)"
    exit 1
  fi
  if ! ok "$file.partial"; then
    rm -f "$file.partial"
    log "downloaded file fails its SHA-256 check (expected prefix $PREFIX)"
    exit 1
  fi
  mv "$file.partial" "$file"
fi
echo "$file"
