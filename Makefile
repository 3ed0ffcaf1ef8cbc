# TumorSynth: one virtual environment, torch pinned FIRST (pip then takes the CPU build on disk;
# anything unpinned pulls a multi-GB CUDA build).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[test,slicer-test,web,web-test]" \
	  || $(PIP) install --quiet -e ".[test,slicer-test]" || $(PIP) install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tumorsynth demo --out demo-output/

test: $(STAMP)
	$(PY) -m pytest -q Testing

bench: $(STAMP)
	$(PY) benchmarks/bench_synthesis.py
	$(PY) benchmarks/bench_cellular.py
	$(PY) benchmarks/bench_training.py

lint: $(STAMP)
	$(PIP) install --quiet ruff
	$(VENV)/bin/ruff check TumorSynthLib TumorSynth Testing benchmarks

clean:
	rm -rf $(VENV) demo-output
