# Two commands for a fresh machine (see README):
#   make        create .venv/, install everything, run the main job
#   make test   run the whole test suite (also creates .venv/ if needed); CI runs this
#   make test-fast   the suite without the tests marked slow (for development)
#   make book   the website of the executed notebooks (student and instructor editions) in build/book/
#   make gpu-check   on a GPU machine: measure the CUDA path in about 8 minutes (report in runs/gpu_check/)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all test test-fast book gpu-check lab clean-venv
all: $(STAMP)
	$(BIN)/lgd workbook

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[test]"
	# grad-cam's opencv-python-headless and the contrib build share the cv2 folder: the contrib one last
	$(BIN)/python -m pip install --force-reinstall --no-deps opencv-contrib-python-headless==5.0.0.93
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

book: $(STAMP)
	test -f notebooks/executed/09_other_global_context.ipynb || $(BIN)/lgd workbook
	$(BIN)/lgd book

gpu-check: $(STAMP)
	$(BIN)/lgd gpu-check --out runs/gpu_check

LAB ?= notebooks/exercises
lab: $(STAMP)
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB)/

clean-venv:
	rm -rf $(VENV)
