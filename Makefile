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

.PHONY: setup demo test test-unit test-notebooks test-gpu lab clean strip student help

help:
	@echo "make demo   - set up, then run the whole series offline (tiny profile) -> outputs/final/final.mp4"
	@echo "make test   - unit tests, then every notebook executed with nbval (tiny profile)"
	@echo "make lab    - open the notebooks in JupyterLab"
	@echo "make strip  - remove outputs from the notebooks before committing"
	@echo "make student - student/: the notebooks with exercises blank (SOLUTIONS=0: without the folded solutions)"

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

test: test-unit test-notebooks

test-unit: setup
	$(BIN)/python -m pytest tests -q

test-notebooks: setup
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env notebooks -q -p no:cacheprovider

# GPU: every notebook with the full-size architectures and random weights (no downloads), in the
# memory settings of the colab profile (GPU_PROFILE=full for the other); table of time and memory.
# With real weights in your Hugging Face cache, run it again with GPU_WEIGHTS=real.
GPU_PROFILE ?= colab
GPU_WEIGHTS ?= random
test-gpu:
	@test -x $(BIN)/python || { echo "run 'make setup TORCH_SPEC=torch' first (a CUDA build of torch)"; exit 2; }
	COURSE_PROFILE=$(GPU_PROFILE) COURSE_WEIGHTS=$(GPU_WEIGHTS) HF_HUB_OFFLINE=$(if $(filter real,$(GPU_WEIGHTS)),0,1) \
	  $(BIN)/python benchmarks/notebooks_on_gpu.py --table outputs/gpu_notebooks_$(GPU_PROFILE)_$(GPU_WEIGHTS).md

lab: setup
	$(BIN)/jupyter lab notebooks

strip: setup
	$(BIN)/nbstripout notebooks/*.ipynb

# For teachers: student/NN_*.ipynb with every exercise blank (the solution blocks removed);
# SOLUTIONS=0 also removes the folded solutions. Needs only python and nbformat.
SOLUTIONS ?= 1
student:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) tools/student.py notebooks student $(if $(filter 0,$(SOLUTIONS)),--no-solutions,)

clean:
	rm -rf outputs
