#!/usr/bin/env bash
# device_check.sh: the one command a session with a lent GPU runs first, from
# the repository root on the device machine (docs/DEVICE.md has the recipe):
#
#   bash bench/device_check.sh      results under $OUT (else ./device-out)
#
# It builds there (sm_90 only) with the machine's CUDA toolkit, the cuDNN of
# the machine or of PyTorch's nvidia-cudnn-cu13 wheel, and the host libraries
# of the machine or, where it lacks them, the Debian packages carried in
# .devdeps/ (scripts/prepare-devdeps.sh; `carry: [".devdeps"]`). Four stages,
# each capped, all inside one budget (DEVICE_BUDGET_S, default 450 s, so that
# one 8-minute call holds the whole run), every step with its own cap too:
#   1. (300 s) machine and versions; configure and build; the GPU code's
#      CPU-side unit tests and the op table (test_backend_ops, on the GPU
#      where there is one); ctest -L gpu (every GPU test, verbose)
#   2. (110 s) compute-sanitizer memcheck and racecheck on the GPU tests'
#      quick modes, 40 s each, most informative first (a runtime that
#      refuses the sanitizer, such as gVisor, is reported as such, not as
#      failing tests)
#   3. (60 s) imgsearch devices; imgsearch bench --quick; bench -w knn-parts
#   4. (the rest) the PyTorch comparisons (bench/compare_torch.py --quick
#      --no-compile, bench/compare_torch_knn.py --quick)
# $OUT/summary.md is rewritten after every step, so a run cut off at any
# point still returns what it did. At most 8 files come back from a device
# run: summary.md, machine.txt and one log per stage (stage1-build.log,
# stage1-tests.log, stage2-sanitizer.log, stage3-bench.log, stage4-torch.log),
# each cut to its last 15 MiB.
#
# Without a GPU (this dev machine, CI) it still builds, runs the GPU tests
# (which skip) and reports every GPU stage as skipped with the reason.
# FORCE_DEVDEPS=1 uses .devdeps even where the machine has the libraries, and
# FORCE_CUDNN_WHEEL=1 the wheel's cuDNN even where the machine has one (to test
# those paths); DEVICE_BUDGET_S sets the budget; BUILD_DIR overrides
# build-device/.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/device-out}
mkdir -p "$OUT"
build=${BUILD_DIR:-$root/build-device}
budget=${DEVICE_BUDGET_S:-450}
start=$(date +%s)
deadline=$((start + budget))
summary="$OUT/summary.md"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
[ "$commit" != '?' ] && ! git diff --quiet HEAD 2>/dev/null && commit="$commit (with local changes)"
rows=()  # summary table rows
notes=() # summary notes
[ -d /usr/local/cuda/bin ] && case ":$PATH:" in *:/usr/local/cuda/bin:*) ;; *) PATH="$PATH:/usr/local/cuda/bin" ;; esac

now() { date +%s; }
stage_end=$deadline
# stage N CAP: the stage's steps end within CAP seconds (and the budget).
stage() { stage_end=$(( $(now) + $2 )); [ $stage_end -gt $deadline ] && stage_end=$deadline; return 0; }
left() { echo $((stage_end - $(now))); }

write_summary() {
  local tmp="$summary.tmp.$$"
  {
    echo "# device_check $(date -u -d "@$start" +%Y-%m-%dT%H:%MZ 2>/dev/null || date -u +%Y-%m-%dT%H:%MZ), commit $commit"
    echo
    echo "device: ${device_line:-?}; budget ${budget} s, ${1:-running}: $(( $(now) - start )) s so far"
    echo
    echo "| stage | step | result | seconds | log |"
    echo "|---|---|---|---:|---|"
    local r
    for r in "${rows[@]}"; do echo "$r"; done
    if [ ${#notes[@]} -gt 0 ]; then
      echo
      echo "Notes:"
      for r in "${notes[@]}"; do echo "- $r"; done
    fi
  } >"$tmp" && mv "$tmp" "$summary"
}

row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); write_summary; echo "== [$1] $2: $3 (${4} s)" >&2; }
note() { notes+=("$1"); write_summary; echo "   note: $1" >&2; }
skip() { row "$1" "$2" "skipped: $3" 0 -; }

# Keeps a log under 15 MiB (a device run returns files of at most 16 MiB).
trim() { local f="$OUT/$1"; [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 15728640 ] && { tail -c 15728640 "$f" >"$f.t" && mv "$f.t" "$f"; }; return 0; }

# step STAGE NAME LOG CAP CMD...: runs CMD (appending to $OUT/LOG) for at most
# CAP seconds and what is left of the budget; records passed / FAILED /
# TIMED OUT. Returns CMD's status (124 on time out, 125 if no time was left).
step() {
  local stage=$1 name=$2 log=$3 cap=$4; shift 4
  local t0 rc result remaining
  remaining=$(left)
  [ "$cap" -gt "$remaining" ] && cap=$remaining
  if [ "$cap" -lt 10 ]; then
    skip "$stage" "$name" "no time left (stage cap or the ${budget} s budget)"
    return 125
  fi
  t0=$(now)
  echo "===== $name ($(date -u +%H:%M:%S), cap ${cap} s): $*" >>"$OUT/$log"
  if declare -F "$1" >/dev/null; then
    # a function of this script: timeout runs programs, so hand it over to a
    # child bash with the variables it reads (exported ones travel anyway)
    timeout -k 10 "$cap" bash -c "$(declare -f "$1"); $(declare -p root build cuda_flag cmake_extra 2>/dev/null); \"\$@\"" \
      step "$@" >>"$OUT/$log" 2>&1
  else
    timeout -k 10 "$cap" "$@" >>"$OUT/$log" 2>&1
  fi
  rc=$?
  case $rc in
    0) result=passed ;;
    124 | 137) result="TIMED OUT after ${cap} s" ;;
    *) result="FAILED (exit $rc)" ;;
  esac
  echo "===== $name: $result" >>"$OUT/$log"
  trim "$log"
  row "$stage" "$name" "$result" $(( $(now) - t0 )) "$log"
  return $rc
}

# ---- Stage 1: machine, versions, build, GPU tests -----------------------------------
stage 1 300
gpu=0
gpu_reason=""
if ! command -v nvidia-smi >/dev/null; then
  gpu_reason="no nvidia-smi on this machine"
elif ! nvidia-smi -L >/dev/null 2>&1; then
  gpu_reason="nvidia-smi finds no GPU: $(nvidia-smi -L 2>&1 | head -1)"
else
  gpu=1
fi
if [ $gpu -eq 1 ]; then
  device_line="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1), kernel $(uname -r)"
else
  device_line="no GPU ($gpu_reason)"
fi
write_summary

machine() {
  date -u; uname -a; head -3 /etc/os-release 2>/dev/null
  echo "cores $(nproc)"; free -g 2>/dev/null | head -2
  echo "--- GPU"
  nvidia-smi 2>&1 | head -20
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,compute_cap --format=csv 2>&1
  echo "--- tools"
  command -v nvcc && nvcc --version | tail -2
  cmake --version | head -1; echo "ninja $(ninja --version 2>/dev/null)"; gcc --version | head -1
  echo "compute-sanitizer: $(command -v compute-sanitizer || echo none)"; echo "ncu: $(command -v ncu || echo none)"
  echo "pkg-config: $(command -v pkg-config || echo none)"
  echo "python3: $(command -v python3) $(python3 --version 2>&1)"
  python3 -c 'import torch, torchvision; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "torchvision", torchvision.__version__, "gpu", torch.cuda.is_available())' 2>&1 | tail -1
  python3 -c 'import nvidia.cudnn as m; print("nvidia.cudnn wheel:", list(m.__path__))' 2>&1 | tail -1
  echo "--- host libraries (headers)"
  local h
  for h in png.h zlib.h turbojpeg.h jpeglib.h webp/decode.h tiffio.h gif_lib.h cblas.h cudnn.h; do
    printf '%s: %s\n' "$h" "$(find /usr/include /usr/local/include /usr/local/cuda/include -name "$h" 2>/dev/null | head -3 | tr '\n' ' ')"
  done
  echo "--- libraries"
  ldconfig -p 2>/dev/null | grep -E "libpng16|libturbojpeg|libopenblas|libz\.so|libcudnn\.|libcublas\.|libgomp" | head -20
  timeout 15 find /usr /opt \( -name 'libcudnn.so*' -o -name 'cudnn_version.h' \) 2>/dev/null | head -8
  echo "--- caches"
  ls ~/.cache/torch ~/.cache/huggingface 2>&1 | head
}
step 1 "machine and versions" machine.txt 40 machine

# Host libraries: the machine's, else the carried Debian packages.
have_system_hostlibs() {
  command -v pkg-config >/dev/null || return 1
  pkg-config --exists libturbojpeg libjpeg libwebp libwebpdemux libtiff-4 || return 1
  [ -e /usr/include/gif_lib.h ] || [ -e /usr/local/include/gif_lib.h ] || return 1
  [ -e /usr/include/png.h ] || [ -e /usr/local/include/png.h ] || return 1
  [ -e /usr/include/zlib.h ] || [ -e /usr/local/include/zlib.h ] || return 1
  local h # each candidate on its own: one missing path must not hide another
  for h in /usr/include/cblas.h /usr/include/x86_64-linux-gnu/cblas.h /usr/include/openblas/cblas.h \
    /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h /usr/local/include/cblas.h; do
    [ -e "$h" ] && return 0
  done
  return 1
}
cmake_extra=()
deps_ok=1
if [ -z "${FORCE_DEVDEPS:-}" ] && have_system_hostlibs; then
  note "host libraries: the machine's (pkg-config, libpng, zlib, libjpeg-turbo, libwebp, libtiff, giflib, OpenBLAS headers found)"
elif ls .devdeps/*.deb >/dev/null 2>&1; then
  deps=/tmp/imgsearch-devdeps
  rm -rf "$deps" && mkdir -p "$deps"
  for d in .devdeps/*.deb; do dpkg -x "$d" "$deps" || deps_ok=0; done
  # Debian's -dev symlinks can be absolute (libz.so -> /lib/.../libz.so.1.2.13): point them into $deps.
  while IFS= read -r l; do
    t=$(readlink "$l")
    [ -e "$deps$t" ] && ln -sfn "$deps$t" "$l"
  done < <(find "$deps" -type l -lname '/*')
  libdirs="$deps/usr/lib/x86_64-linux-gnu:$deps/lib/x86_64-linux-gnu:$deps/usr/lib/x86_64-linux-gnu/openblas-pthread"
  export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CMAKE_PREFIX_PATH="$deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PKG_CONFIG_LIBDIR="$deps/usr/lib/x86_64-linux-gnu/pkgconfig:$deps/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$deps"
  pc=$(command -v pkg-config || true)
  [ -n "${FORCE_DEVDEPS:-}" ] || [ -z "$pc" ] && pc=$deps/usr/bin/pkgconf
  [ -x "$pc" ] && cmake_extra+=("-DPKG_CONFIG_EXECUTABLE=$pc") || deps_ok=0
  note "host libraries: the carried .devdeps ($(ls .devdeps/*.deb | wc -l) packages unpacked in $deps; pkg-config: $pc)"
else
  deps_ok=0
  note "host libraries missing (pkg-config, libpng, zlib, libjpeg-turbo, libwebp, libtiff, giflib or OpenBLAS headers) and no .devdeps/*.deb carried: run scripts/prepare-devdeps.sh here and carry .devdeps"
fi

# cuDNN: the machine's (cudnn.h and libcudnn.so side by side), else PyTorch's
# nvidia-cudnn-cu13 wheel (a namespace package: __file__ is None, __path__[0]
# is its folder; its lib/ has libcudnn.so.9 and no libcudnn.so to link with).
find_system_cudnn() {
  local inc lib
  for inc in /usr/include /usr/include/x86_64-linux-gnu /usr/local/cuda/include; do
    [ -e "$inc/cudnn.h" ] && [ -e "$inc/cudnn_version.h" ] || continue
    for lib in /usr/lib/x86_64-linux-gnu /usr/local/cuda/lib64 /usr/local/cuda/lib; do
      [ -e "$lib/libcudnn.so" ] && { echo "$inc $lib"; return 0; }
    done
  done
  return 1
}
if [ -z "${FORCE_CUDNN_WHEEL:-}" ] && sys=$(find_system_cudnn); then
  note "cuDNN: the machine's (${sys% *}, ${sys#* })"
else
  wheel=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null || true)
  if [ -n "$wheel" ] && [ -e "$wheel/include/cudnn.h" ] && [ -e "$wheel/include/cudnn_version.h" ] &&
    so=$(ls "$wheel"/lib/libcudnn.so.[0-9]* 2>/dev/null | head -1) && [ -n "$so" ]; then
    cudnn_root=/tmp/imgsearch-cudnn
    rm -rf "$cudnn_root" && mkdir -p "$cudnn_root/lib"
    ln -s "$wheel/include" "$cudnn_root/include"
    ln -s "$so" "$cudnn_root/lib/libcudnn.so"
    export CUDNN_ROOT="$cudnn_root"
    export LD_LIBRARY_PATH="$wheel/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" # libcudnn.so.9 and its sub-libraries
    note "cuDNN: PyTorch's wheel ($wheel, $(basename "$so")), linked through $cudnn_root"
  else
    note "cuDNN: none found (no cudnn.h + libcudnn.so on the machine, no usable nvidia-cudnn wheel): the CUDA backend cannot build"
  fi
fi

configure() {
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    ${cuda_flag:+"$cuda_flag"} "${cmake_extra[@]}"
}
cuda_flag=""
command -v nvcc >/dev/null && cuda_flag=-DIMS_CUDA=ON
built=0
if [ $deps_ok -eq 0 ]; then
  skip 1 "configure and build" "host libraries missing (see the notes)"
elif step 1 configure stage1-build.log 90 configure &&
  step 1 build stage1-build.log 300 cmake --build "$build" -j "$(nproc)"; then
  built=1
  cuda_line=$(grep -h "imgsearch: CUDA backend" "$OUT/stage1-build.log" | tail -1 | sed 's/^-- imgsearch: //')
  [ -n "$cuda_line" ] && note "build: $cuda_line"
fi

# ctest over a label or regex; the result line says how many ran and how many skipped.
ctest_step() {
  local name=$1 cap=$2; shift 2
  local before after
  before=0
  [ -f "$OUT/stage1-tests.log" ] && before=$(wc -l <"$OUT/stage1-tests.log")
  step 1 "$name" stage1-tests.log "$cap" ctest --test-dir "$build" --timeout 240 "$@"
  local rc=$?
  local out
  out=$(tail -n +"$((before + 1))" "$OUT/stage1-tests.log")
  local passed skipped total
  passed=$(grep -cE "Test +#[0-9]+: .* Passed" <<<"$out")
  skipped=$(grep -cE "\*\*\*Skipped" <<<"$out")
  total=$(grep -oE "out of [0-9]+" <<<"$out" | tail -1 | grep -oE "[0-9]+")
  local why=""
  [ "$skipped" -gt 0 ] && why=": $(grep -oE "SKIPPED: .*" <<<"$out" | sort | uniq -c | head -3 | sed 's/^ *//' | tr '\n' ';')"
  local failed
  failed=$(sed -n '/The following tests FAILED/,$p' <<<"$out" | grep -E "^[[:space:]]+[0-9]+ - " | sed 's/^ *//' | tr '\n' ';')
  note "$name: ${total:-?} tests, $passed passed, $skipped skipped$why${failed:+; FAILED: $failed}"
  if [ $rc -eq 0 ] && [ "$passed" -eq 0 ] && [ "$skipped" -gt 0 ]; then
    # "passed" would hide that nothing ran
    rows[${#rows[@]}-1]="| 1 | $name | NOT RUN: every test skipped (see the notes) | - | stage1-tests.log |"
    write_summary
  fi
  return $rc
}
if [ $built -eq 1 ]; then
  # the GPU code's CPU-side logic, and every op against the CPU (on the GPU where there is one)
  ctest_step "unit: GPU logic and the op table" 120 -R "^(test_cuda_logic|test_inception_graphs|test_backend_ops)$" -V
  if [ $gpu -eq 1 ]; then
    ctest_step "ctest -L gpu" 240 -L gpu -V
  else
    # the GPU tests still run: each must say why it skips (exit 77)
    ctest_step "ctest -L gpu (no GPU: each must skip)" 60 -L gpu -V
    rows[${#rows[@]}-1]="| 1 | ctest -L gpu | skipped: $gpu_reason (every GPU test exited 77, see stage1-tests.log) | - | stage1-tests.log |"
    write_summary
  fi
else
  skip 1 "ctest -L gpu" "the build failed or did not run"
fi

# ---- Stage 2: compute-sanitizer on the quick modes --------------------------------
stage 2 110
fx=$root/tests/fixtures
# Most informative first (our own kernels: k-NN selection, the op table, the
# text encoder; then cuDNN-heavy Inception, slow under the tools).
sanitize_runs=(
  "memcheck test_knn_gpu quick"
  "racecheck test_knn_gpu quick"
  "memcheck test_backend_ops quick"
  "racecheck test_backend_ops quick"
  "memcheck test_text_encoder_gpu $fx quick"
  "racecheck test_text_encoder_gpu $fx quick"
  "memcheck test_backend_gpu quick"
  "memcheck test_inception_gpu $fx/inception_golden $fx/images quick"
  "racecheck test_inception_gpu $fx/inception_golden $fx/images quick"
)
if [ $built -eq 0 ]; then
  skip 2 "compute-sanitizer" "nothing built"
elif [ $gpu -eq 0 ]; then
  skip 2 "compute-sanitizer memcheck and racecheck" "$gpu_reason"
elif ! command -v compute-sanitizer >/dev/null; then
  skip 2 "compute-sanitizer memcheck and racecheck" "no compute-sanitizer on this machine"
else
  refused=""
  sanitize() { # TOOL TEST ARGS...
    local tool=$1; shift
    local extra=()
    [ "$tool" = memcheck ] && extra=(--leak-check full)
    # --report-api-errors no: tests fail API calls on purpose (a huge allocation)
    compute-sanitizer --tool "$tool" "${extra[@]}" --error-exitcode 99 --report-api-errors no --print-limit 30 \
      "$build/tests/$1" "${@:2}"
  }
  for r in "${sanitize_runs[@]}"; do
    read -r -a argv <<<"$r"
    tool=${argv[0]} t=${argv[1]}
    if [ ! -x "$build/tests/$t" ]; then
      skip 2 "$tool $t" "not built"
      continue
    fi
    before=0
    [ -f "$OUT/stage2-sanitizer.log" ] && before=$(wc -l <"$OUT/stage2-sanitizer.log")
    step 2 "$tool $t quick" stage2-sanitizer.log 40 sanitize "${argv[@]}"
    rc=$?
    new=$(tail -n +"$((before + 1))" "$OUT/stage2-sanitizer.log")
    if grep -qE "Device not supported|Unable to find injection library|Target application terminated before first instrumented API call" <<<"$new"; then
      refused=$(grep -m1 -E "Device not supported|Unable to find injection library|Target application terminated" <<<"$new")
      rows[${#rows[@]}-1]="| 2 | $tool $t quick | refused by this runtime, not a test failure: ${refused//|/\\|} | - | stage2-sanitizer.log |"
      write_summary
      note "compute-sanitizer refused the device (${refused}): a runtime that does not support it (gVisor); the other sanitizer runs were skipped. Not a test failure."
      break
    elif [ $rc -eq 77 ]; then
      rows[${#rows[@]}-1]="| 2 | $tool $t quick | skipped by the test (exit 77) | - | stage2-sanitizer.log |"
      write_summary
    elif [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 125 ] && [ $rc -ne 137 ]; then
      errs=$(grep -oE "ERROR SUMMARY: [0-9]+ errors?|RACECHECK SUMMARY: [0-9]+ hazards? displayed \([0-9]+ errors?, [0-9]+ warnings?\)|LEAK SUMMARY: [0-9]+ bytes leaked in [0-9]+ allocations|[0-9]+ checks, [0-9]+ failed" <<<"$new" | head -3 | tr '\n' ';')
      [ -n "$errs" ] && note "$tool $t: $errs"
    fi
  done
fi

# ---- Stage 3: imgsearch bench --quick ---------------------------------------------------
stage 3 60
if [ $built -eq 0 ]; then
  skip 3 "imgsearch bench --quick" "nothing built"
elif [ $gpu -eq 0 ]; then
  skip 3 "imgsearch bench --quick" "$gpu_reason"
else
  bench_args=(--images "$root/data/samples")
  [ -f .devdeps/minilm-f16.isw ] && bench_args+=(--text-model "$root/.devdeps/minilm-f16.isw")
  step 3 "imgsearch devices" stage3-bench.log 20 "$build/imgsearch" devices
  step 3 "imgsearch bench --quick" stage3-bench.log 120 "$build/imgsearch" bench --quick -o md "${bench_args[@]}"
  # issue 15's k-NN parts (scores, selection, streamed merge) beside RESULTS.md's predictions
  step 3 "imgsearch bench -w knn-parts" stage3-bench.log 60 "$build/imgsearch" bench --quick -o md -w knn-parts \
    --knn-shape 1000000:384:1:10,1000000:384:16:10,1000000:384:1024:100,1000000:384:1:16384
fi

# ---- Stage 4: the PyTorch comparisons (what is left of the budget) -----------------------
stage 4 "$budget"
if [ $built -eq 0 ]; then
  skip 4 "PyTorch comparisons" "nothing built"
elif [ $gpu -eq 0 ]; then
  skip 4 "PyTorch comparisons" "$gpu_reason"
elif ! python3 -c 'import torch, numpy, torchvision; assert torch.cuda.is_available()' 2>/dev/null; then
  skip 4 "PyTorch comparisons" "no PyTorch with CUDA in python3"
else
  export PYTHONUNBUFFERED=1
  torch_args=(--imgsearch "$build/imgsearch" --quick --no-compile)
  [ -f .devdeps/minilm-f16.isw ] && torch_args+=(--text-model "$root/.devdeps/minilm-f16.isw")
  step 4 "compare_torch.py --quick --no-compile" stage4-torch.log 150 python3 bench/compare_torch.py "${torch_args[@]}"
  step 4 "compare_torch_knn.py --quick" stage4-torch.log 120 python3 bench/compare_torch_knn.py "$build/bench/bench_knn" \
    --quick --seconds 0.5
fi

write_summary "done"
echo >&2
cat "$summary"
