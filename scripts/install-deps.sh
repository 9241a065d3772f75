#!/usr/bin/env bash
# Installs what imgsearch needs to build and test on a fresh Debian machine.
# Idempotent and quick when everything is already there: apt-get runs only for
# packages that are missing. The CUDA toolkit (nvcc, cuBLAS, cuDNN) is not a
# Debian package here; without it the build is CPU-only.
set -euo pipefail

packages=(
  cmake ninja-build pkg-config make gcc g++   # build
  libpng-dev zlib1g-dev                       # PNG decode; zlib's crc32 for checksums
  libturbojpeg0-dev libjpeg62-turbo-dev       # JPEG decode (TurboJPEG API)
  libwebp-dev libtiff-dev libgif-dev          # WebP, TIFF and GIF decode
  libopenblas-dev                             # CPU backend GEMM
  libdnnl-dev                                 # CPU backend convolutions (oneDNN)
  libopenmpi-dev openmpi-bin                  # search --mpi (optional: the build works without it)
  libmicrohttpd-dev                           # serve's HTTP server
  chromium-headless-shell                     # renders the contact sheet once in its test (~10 s to install)
  clang libclang-rt-14-dev libomp-dev         # libFuzzer, sanitizer and OpenMP runtimes for clang
  python3                                     # format cross-check test (stdlib only)
  python3-venv                                # make test-python: the package's test environment
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
else
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      echo "install-deps: not root and no sudo; install these by hand: ${missing[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python packages the tests' cross-checks read our files with (numpy: .npy,
# .npz and the index's tables), into the python3 that CMake and the tests find.
if ! python3 -c 'import numpy' 2>/dev/null; then
  echo "install-deps: pip install numpy"
  python3 -m pip install --quiet numpy
fi
# fid's parity test runs scipy's sqrtm and the reference packages' own FID/KID
# functions (read from their sources, without torch: hence --no-deps; the
# test says SKIPPED for what is missing, so a failed install only narrows it).
if ! python3 -c 'import scipy' 2>/dev/null; then
  echo "install-deps: pip install scipy"
  python3 -m pip install --quiet scipy || echo "install-deps: scipy not installed (fid parity checks narrowed)"
fi
if ! python3 -c 'import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, ("pytorch_fid", "cleanfid", "torch_fidelity"))))' 2>/dev/null; then
  echo "install-deps: pip install --no-deps pytorch-fid clean-fid torch-fidelity"
  python3 -m pip install --quiet --no-deps pytorch-fid clean-fid torch-fidelity ||
    echo "install-deps: reference FID packages not installed (fid parity checks narrowed)"
fi
