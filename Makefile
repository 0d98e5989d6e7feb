# Pixels to Motion - the two commands: `make demo` and `make test` (both set themselves up).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch that lies on this kind of machine; an unpinned torch pulls a multi-GB
# CUDA build. Override on a GPU machine, e.g. `make test TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# Tests and the demo run offline in the tiny profile (random weights) unless told otherwise.
COURSE_PROFILE ?= tiny
export COURSE_PROFILE
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYTHONWARNINGS ?= ignore::FutureWarning
export MPLBACKEND ?= Agg

# `make test` works in its own folder, wiped at the start: it never reads or disturbs outputs/.
TEST_OUTPUTS ?= $(CURDIR)/.test-outputs
# `make test-min`: a separate venv with exactly the lowest allowed versions (requirements-min.txt).
MIN_VENV ?= .venv-min
MIN_STAMP := $(MIN_VENV)/.installed

.PHONY: setup demo test test-browser test-unit test-notebooks test-notebooks-half test-outputs test-min test-gpu gpu-wheels lab clean strip student student-publish help

help:
	@echo "make demo   - set up, then run the whole series offline (tiny profile) -> outputs/final/final.mp4"
	@echo "make test   - unit tests, then every notebook executed with nbval (tiny profile), in .test-outputs/"
	@echo "make test-browser - the studio app driven in headless Chromium (needs chromium + chromium-driver)"
	@echo "make test-min - the unit tests with exactly the lowest allowed versions (a separate venv, $(MIN_VENV))"
	@echo "make wheel  - dist/pixels_to_motion-*.whl: the course in one file, data included (for Colab without a public copy)"
	@echo "make release - check setup cells, badges and that REPO_URL serves REF (helpers/core/colab.py)"
	@echo "make test-colab - the unit tests and a few notebooks with the versions Colab ships (requirements-colab.txt)"
	@echo "make lab    - open the notebooks in JupyterLab"
	@echo "make strip  - remove outputs from the notebooks before committing"
	@echo "make student - student/: the notebooks with exercises blank (SOLUTIONS=0: student-no-solutions/, without the folded solutions)"
	@echo "make student-publish - regenerate the committed student/ copies after a notebook changed"

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python -m helpers demo

test: test-unit test-notebooks test-notebooks-half

# Wiped once per `make` run, so unit tests and notebooks of one `make test` share it.
test-outputs:
	rm -rf $(TEST_OUTPUTS)
	mkdir -p $(TEST_OUTPUTS)

test-unit: setup test-outputs
	COURSE_OUTPUTS=$(TEST_OUTPUTS) $(BIN)/python -m pytest tests -q

test-notebooks: setup test-outputs
	COURSE_OUTPUTS=$(TEST_OUTPUTS) $(BIN)/python -m pytest --nbval-lax --nbval-current-env notebooks -q -p no:cacheprovider

# The studio app (notebook 10) in a real browser: selenium drives headless Chromium (Debian:
# apt-get install chromium chromium-driver); the test skips itself, saying why, when either is missing.
test-browser: setup test-outputs
	COURSE_BROWSER_TEST=1 COURSE_OUTPUTS=$(TEST_OUTPUTS) $(BIN)/python -m pytest tests/test_browser.py -q -rs -p no:cacheprovider

$(MIN_STAMP): requirements-min.txt pyproject.toml
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install -q $(TORCH_SPEC)
	$(MIN_VENV)/bin/python -m pip install -q -r requirements-min.txt
	$(MIN_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $(MIN_STAMP)

test-min: $(MIN_STAMP) test-outputs
	$(MIN_VENV)/bin/python -m pip list --format=freeze | grep -iE "^($(shell sed -e 's/[=#].*//' -e '/^$$/d' requirements-min.txt | paste -sd'|' -))==" || true
	COURSE_OUTPUTS=$(TEST_OUTPUTS) $(MIN_VENV)/bin/python -m pytest tests -q

# The half-precision net, on CPU: the notebooks whose asserts touch model outputs, with the tiny twins
# in bfloat16 (COURSE_DTYPE). It catches float32-only asserts before a GPU ever sees them.
HALF_NOTEBOOKS ?= notebooks/05_flux_keyframes.ipynb notebooks/06_stable_video_diffusion.ipynb \
                  notebooks/07_prompted_multikeyframe_video.ipynb
# Each notebook runs in its own pytest process, HALF_JOBS at a time: a tiny kernel uses one torch thread,
# so on 2 cores two notebooks side by side take about half the time of one after the other (bfloat16 is
# several times slower than float32 on a CPU without avx512_bf16/AMX: docs/benchmarks.md). Each gets its
# own copy of the outputs folder, so they never write into each other's files.
# tests/bf16_net/sitecustomize.py (on PYTHONPATH for this pass only): on a CPU without oneDNN bf16
# convolutions (AVX2-only), convolutions, linear layers and attention with all-bf16 inputs are computed
# in float32 from those bf16 values and rounded back to bf16, as a GPU does; elsewhere it does nothing.
HALF_JOBS ?= 2
HALF_PYTEST_ARGS ?=
test-notebooks-half: setup test-outputs
	rm -rf $(TEST_OUTPUTS)-half
	printf '%s\n' $(HALF_NOTEBOOKS) | xargs -P $(HALF_JOBS) -I NB sh -c \
	  'out=$(TEST_OUTPUTS)-half/$$(basename NB .ipynb); mkdir -p $$out && cp -a $(TEST_OUTPUTS)/. $$out/ && \
	   COURSE_OUTPUTS=$$out COURSE_DTYPE=bfloat16 PYTHONPATH=$(CURDIR)/tests/bf16_net$${PYTHONPATH:+:$$PYTHONPATH} $(BIN)/python -m pytest --nbval-lax --nbval-current-env NB \
	   -q -p no:cacheprovider $(HALF_PYTEST_ARGS) || { echo "FAILED in bfloat16: NB"; exit 1; }'

# GPU: every notebook with the full-size architectures and random weights (no downloads), in the
# memory settings of the colab profile (GPU_PROFILE=full for the other); table of time and memory.
# colab follows the T4 plan on any GPU (COURSE_GPU_CLASS=t4: float16 / NF4 / offload, as on Colab).
# With real weights in your Hugging Face cache, run it again with GPU_WEIGHTS=real.
# On a bare CUDA machine without internet (torch, transformers and accelerate installed): fetch the
# rest elsewhere with `make gpu-wheels` (same Python version), copy .whl/ over, then
# `make test-gpu WHEELS=.whl`: a venv that sees the system's torch, filled from the wheels alone.
GPU_PROFILE ?= colab
GPU_WEIGHTS ?= random
GPU_BUDGET  ?= 120
WHEELS ?=
test-gpu:
ifneq ($(WHEELS),)
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -m pip install -q --no-index --find-links $(WHEELS) -r requirements-gpu.txt bitsandbytes
	$(BIN)/python -m pip install -q --no-index --no-deps --no-build-isolation -e .
endif
	@test -x $(BIN)/python || { echo "run 'make setup TORCH_SPEC=torch' first (a CUDA build of torch), or give WHEELS=.whl"; exit 2; }
	COURSE_PROFILE=$(GPU_PROFILE) COURSE_WEIGHTS=$(GPU_WEIGHTS) HF_HUB_OFFLINE=$(if $(filter real,$(GPU_WEIGHTS)),0,1) \
	  COURSE_GPU_CLASS=$(if $(filter colab,$(GPU_PROFILE)),t4,) \
	  $(BIN)/python benchmarks/notebooks_on_gpu.py --budget $(GPU_BUDGET) \
	  --table outputs/gpu_notebooks_$(GPU_PROFILE)_$(GPU_WEIGHTS).md

gpu-wheels:
	$(PYTHON) -m pip download -q -d .whl -r requirements-gpu.txt
	$(PYTHON) -m pip download -q -d .whl --no-deps bitsandbytes

lab: setup
	$(BIN)/jupyter lab notebooks

strip: setup
	$(BIN)/nbstripout notebooks/*.ipynb

# For teachers: student/NN_*.ipynb with every exercise blank (the solution blocks removed);
# SOLUTIONS=0 also removes the folded solutions. Needs only python and nbformat.
SOLUTIONS ?= 1
student:
	$(if $(filter 0,$(SOLUTIONS)),$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) tools/student.py notebooks student-no-solutions --no-solutions,$(MAKE) student-publish)

# The committed student copies (student/, with their own Colab badges); tests/test_student_copies.py
# fails until they are regenerated after a notebook changes.
student-publish:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) tools/student.py notebooks student --badge-folder student

clean:
	rm -rf outputs .test-outputs .test-outputs-half

.PHONY: wheel release test-colab
# Colab without a public copy of the course: one self-contained wheel (helpers + data/ as package data).
# Upload it to /content or MyDrive/pixels-to-motion/ and every notebook's setup cell installs it.
wheel: setup
	rm -rf dist build
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w dist .
	@ls dist/*.whl

# Before announcing a release: every setup cell and badge agrees with helpers/core/colab.py, REF exists
# here, and REPO_URL serves it (network). See colab/README.md, "Publishing".
release: setup
	$(BIN)/python tools/setup_cell.py --published

# `make test-colab`: a separate venv with the versions a current Colab runtime ships (requirements-colab.txt,
# departures written there: the CPU torch of TORCH_SPEC, this machine's Python, a current pip), then the unit
# tests (but those that exercise only torch and numpy maths, the same torch as `make test`) and the notebooks
# most sensitive to those versions (Flux, SVD, LTX-Video/diffusers, the ipywidgets 7.7 + gradio studio).
# .ci/run runs it after `make test`. Its first run found three Colab-only bugs (accelerate 1.14's
# skip_first_batches forgetting the epoch; ffmpeg 7.0 dropping a VFR clip's last frame; pip 23's git+file URLs).
COLAB_VENV ?= .venv-colab
COLAB_STAMP := $(COLAB_VENV)/.installed
COLAB_NOTEBOOKS ?= notebooks/05_flux_keyframes.ipynb notebooks/06_stable_video_diffusion.ipynb \
                   notebooks/07_prompted_multikeyframe_video.ipynb notebooks/10_video_studio_app.ipynb
# Same torch in both venvs: these files test nothing that depends on requirements-colab.txt's versions.
COLAB_SKIP ?= tests/test_pixelcnnpp.py tests/test_sample.py tests/test_architecture.py tests/test_browser.py \
              tests/test_student_copies.py tests/test_notebooks_meta.py tests/test_lesson_claims.py
$(COLAB_STAMP): requirements-colab.txt pyproject.toml
	rm -rf $(COLAB_VENV)
	$(PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install -q --upgrade pip
	$(COLAB_VENV)/bin/python -m pip install -q $(TORCH_SPEC)
	$(COLAB_VENV)/bin/python -m pip install -q -r requirements-colab.txt "nbval>=0.11" "nbclient>=0.10" "setuptools>=68"
	$(COLAB_VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(COLAB_STAMP)

test-colab: $(COLAB_STAMP) test-outputs
	$(COLAB_VENV)/bin/python -m pip list --format=freeze | grep -iE "^($(shell sed -e 's/[=#].*//' -e '/^$$/d' requirements-colab.txt | paste -sd'|' -)|torch)==" || true
	COURSE_OUTPUTS=$(TEST_OUTPUTS) $(COLAB_VENV)/bin/python -m pytest tests -q $(addprefix --ignore=,$(COLAB_SKIP))
	COURSE_OUTPUTS=$(TEST_OUTPUTS) $(COLAB_VENV)/bin/python -m pytest --nbval-lax --nbval-current-env $(COLAB_NOTEBOOKS) -q -p no:cacheprovider
