#!/usr/bin/env bash
# device_check.sh: the one command a session with a lent GPU runs, from the
# repository root on the device machine:
#
#   bash bench/device_check.sh            (results under $OUT, or ./device-out)
#
# It prints the machine, builds (for sm_90 only, to save time; with the host
# libraries from .devdeps/ when the machine lacks them: run
# scripts/prepare-devdeps.sh here first and carry .devdeps), runs every test
# (the `gpu` ones included), runs compute-sanitizer memcheck and racecheck on
# every GPU test binary (90 s each at most), runs imgsearch bench --quick (the
# full one with FULL_BENCH=1) and bench/compare_torch.py --quick, and writes logs plus summary.md under $OUT. Each step says
# whether it passed, failed or was skipped, and why; a failed step does not
# stop the later ones. Budget: well under 8 minutes on an H100 machine.
# Without a GPU it still runs and says what it skipped. FORCE_DEVDEPS=1 uses
# .devdeps even where the machine has the libraries (to test that path).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/device-out}
mkdir -p "$OUT"
build=${BUILD_DIR:-$root/build-device}
summary="$OUT/summary.md"
start=$(date +%s)
echo "# device_check $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" >"$summary"
echo "| step | result | seconds | log |" >>"$summary"
echo "|---|---|---:|---|" >>"$summary"

# step NAME LOG CMD...: runs CMD with output to $OUT/LOG and records the result.
step() {
  local name=$1 log=$2; shift 2
  local t0=$(date +%s)
  echo "== $name" >&2
  "$@" >"$OUT/$log" 2>&1
  local rc=$? t=$(( $(date +%s) - t0 ))
  local result=passed
  [ $rc -eq 0 ] || result="FAILED (exit $rc)"
  echo "| $name | $result | $t | $log |" >>"$summary"
  tail -n 5 "$OUT/$log" >&2
  return $rc
}
skip() { echo "| $1 | skipped: $2 | 0 | - |" >>"$summary"; echo "== $1: skipped: $2" >&2; }

machine() {
  date -u; uname -a; cat /etc/os-release 2>/dev/null | head -3
  nproc; free -g | head -2
  nvidia-smi || echo "nvidia-smi: not available"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>/dev/null
  nvcc --version | tail -2; cmake --version | head -1; ninja --version 2>/dev/null
  command -v compute-sanitizer ncu
  python3 -c 'import torch, torchvision; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "torchvision", torchvision.__version__)' 2>&1
  echo "--- host libraries"
  for h in png.h turbojpeg.h cblas.h zlib.h; do
    printf '%s: ' "$h"; find /usr/include /usr/local/include -name "$h" 2>/dev/null | head -1; echo
  done
  ldconfig -p | grep -E "libpng16|libturbojpeg|libopenblas|libcudnn\.|libcublas\." | head
  timeout 20 find / -xdev -name 'libcudnn.so*' 2>/dev/null | head -5
  ls ~/.cache/torch ~/.cache/huggingface 2>/dev/null | head
}
step "machine" machine.txt machine

# Host libraries: use the machine's, else unpack the carried Debian packages.
cmake_extra=()
if [ -n "${FORCE_DEVDEPS:-}" ] || ! { [ -e /usr/include/png.h ] && [ -e /usr/include/turbojpeg.h ] && ls /usr/include/*/cblas.h /usr/include/cblas.h >/dev/null 2>&1; }; then
  if ls .devdeps/*.deb >/dev/null 2>&1; then
    deps=/tmp/imgsearch-devdeps
    rm -rf "$deps" && mkdir -p "$deps"
    for d in .devdeps/*.deb; do dpkg -x "$d" "$deps"; done
    export CMAKE_PREFIX_PATH="$deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    export PKG_CONFIG_PATH="$deps/usr/lib/x86_64-linux-gnu/pkgconfig:$deps/usr/share/pkgconfig"
    export PKG_CONFIG_SYSROOT_DIR="$deps"
    export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu:$deps/usr/lib/x86_64-linux-gnu/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "host libraries from .devdeps (unpacked in $deps)" >>"$OUT/machine.txt"
  else
    echo "host -dev libraries missing and no .devdeps/ carried: run scripts/prepare-devdeps.sh and carry .devdeps" >>"$OUT/machine.txt"
  fi
fi
# cuDNN: the system's, else the one in the torch wheel.
if ! ls /usr/include/cudnn.h /usr/local/cuda/include/cudnn.h >/dev/null 2>&1; then
  cudnn_root=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null || true)
  if [ -n "$cudnn_root" ]; then
    export CUDNN_ROOT="$cudnn_root"
    export LD_LIBRARY_PATH="$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    [ -e "$cudnn_root/lib/libcudnn.so" ] || ln -sf "$(ls "$cudnn_root"/lib/libcudnn.so.* | head -1)" "$cudnn_root/lib/libcudnn.so" 2>/dev/null
  fi
fi

configure() {
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DIMS_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 "${cmake_extra[@]}"
}
built=0
if step "configure" configure.log configure && step "build" build.log cmake --build "$build" -j "$(nproc)"; then
  built=1
fi

gpu=0
nvidia-smi -L >/dev/null 2>&1 && gpu=1
text_model=""
[ -f .devdeps/minilm-f16.isw ] && text_model=$root/.devdeps/minilm-f16.isw
if [ $built -eq 1 ]; then
  minilm=""
  [ -d build/models/all-MiniLM-L6-v2 ] && minilm=$root/build/models/all-MiniLM-L6-v2
  step "ctest (all, gpu included)" ctest.log env IMS_MINILM_DIR="$minilm" ctest --test-dir "$build" --output-on-failure -j 8 -LE slow
  grep -h "^SKIPPED" "$build/Testing/Temporary/LastTest.log" >>"$OUT/ctest.log" 2>/dev/null
  step "ctest -L gpu (again, alone, verbose)" ctest-gpu.log ctest --test-dir "$build" -L gpu -V
  step "devices" devices.txt "$build/imgsearch" devices
  if [ $gpu -eq 1 ] && command -v compute-sanitizer >/dev/null; then
    for t in test_backend_ops test_backend_gpu test_knn_gpu test_text_encoder_gpu test_inception_gpu; do
      [ -x "$build/tests/$t" ] || { skip "sanitize $t" "not built"; continue; }
      args=() # quick: small shapes under the sanitizers
      [ "$t" = test_backend_ops ] && args=(quick)
      [ "$t" = test_inception_gpu ] && args=("$root/tests/fixtures/inception_golden" "$root/tests/fixtures/images" quick)
      [ "$t" = test_text_encoder_gpu ] && args=("$root/tests/fixtures")
      [ "$t" = test_knn_gpu ] && args=(quick)
      step "memcheck $t" "memcheck-$t.log" timeout 90 compute-sanitizer --tool memcheck --leak-check full \
        --error-exitcode 99 "$build/tests/$t" "${args[@]}"
      step "racecheck $t" "racecheck-$t.log" timeout 90 compute-sanitizer --tool racecheck --error-exitcode 99 \
        "$build/tests/$t" "${args[@]}"
    done
  else
    skip "compute-sanitizer" "no GPU or no compute-sanitizer"
  fi
  bench_args=(--images "$root/data/samples")
  [ -n "$text_model" ] && bench_args+=(--text-model "$text_model")
  step "imgsearch bench --quick" bench-quick.txt "$build/imgsearch" bench --quick "${bench_args[@]}"
  if [ -n "${FULL_BENCH:-}" ]; then
    step "imgsearch bench (full)" bench-full.txt timeout 400 "$build/imgsearch" bench "${bench_args[@]}"
  else
    skip "imgsearch bench (full)" "FULL_BENCH=1 runs it (several minutes)"
  fi
  torch_args=(--imgsearch "$build/imgsearch" --quick --json "$OUT/compare_torch.json")
  [ -n "$text_model" ] && torch_args+=(--text-model "$text_model")
  step "bench/compare_torch.py --quick" compare_torch.txt timeout 300 python3 bench/compare_torch.py "${torch_args[@]}"
else
  skip "tests and benchmarks" "the build failed (see configure.log / build.log)"
fi
if [ $built -eq 1 ] && [ $gpu -eq 1 ] && python3 -c 'import torch, numpy' 2>/dev/null; then
  step "k-NN against torch (quick)" knn_torch.log timeout 240 python3 "$root/bench/compare_torch_knn.py" \
    "$build/bench/bench_knn" --quick --seconds 0.5
else
  skip "k-NN against torch" "no build, no GPU, or no torch"
fi
echo "" >>"$summary"
echo "total: $(( $(date +%s) - start )) s" >>"$summary"
cat "$summary"
