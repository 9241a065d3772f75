#!/usr/bin/env bash
# prepare-devdeps.sh: run HERE (on the Debian dev machine) before a GPU session:
# downloads the Debian packages of the build's host libraries (libpng, zlib,
# libjpeg-turbo, libwebp, libtiff, giflib, OpenBLAS and what they link) and of
# pkg-config (CMakeLists.txt requires it) into .devdeps/ (git-ignored, about
# 18 MB), so that bench/device_check.sh can build on a device machine that
# lacks them. Pass `carry: [".devdeps"]` to the device run. SKIP_MINILM=1: the
# packages only.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(libpng-dev libpng16-16 zlib1g-dev zlib1g libturbojpeg0-dev libturbojpeg0
          libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libgfortran5 libquadmath0
          pkgconf pkgconf-bin libpkgconf3
          # JPEG (libjpeg API), WebP, TIFF, GIF decoding, and what libtiff-4.pc requires and libtiff6 links
          libjpeg62-turbo-dev libjpeg62-turbo
          libwebp-dev libwebp7 libwebpdemux2 libwebpmux3 libtiff-dev libtiff6 libgif-dev libgif7
          libzstd-dev libzstd1 liblzma-dev liblzma5 libdeflate-dev libdeflate0 libjbig0 liblerc4)
mkdir -p .devdeps
cd .devdeps
rm -f ./*.deb
apt-get download "${packages[@]}" >/dev/null
ls -la ./*.deb >&2
# The real all-MiniLM-L6-v2 as an f16 weight file (about 45 MB): the device has
# no network, and its text tests and benchmarks need the model.
cd ..
if [ -n "${SKIP_MINILM:-}" ]; then
  echo "prepare-devdeps: $(du -sh .devdeps | cut -f1) in .devdeps/ (no MiniLM: SKIP_MINILM)" >&2
  exit 0
fi
minilm=$(scripts/fetch-minilm.sh | tail -n 1)
imgsearch=${IMGSEARCH:-build/imgsearch}
if [ -x "$imgsearch" ]; then
  "$imgsearch" convert "$minilm" --dtype f16 -o .devdeps/minilm-f16.isw >&2
else
  echo "prepare-devdeps: no $imgsearch: build first to include the MiniLM weight file" >&2
fi
echo "prepare-devdeps: $(du -sh .devdeps | cut -f1) in .devdeps/ (carry it to the device)" >&2
