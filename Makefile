# TumorSynth: one virtual environment, torch pinned FIRST (pip then takes the CPU build on disk;
# anything unpinned pulls a multi-GB CUDA build).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint install clean web chromium

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

# --capture=sys: what C code writes to stderr (e.g. glibc's reason for an abort) reaches the log;
# with pytest's default fd capture it dies with the process in a temporary file.
test: $(STAMP) chromium
	$(PY) -m pytest -q --capture=sys Testing

# The browser front end on http://localhost:8080/ (Ctrl-C stops it).
web: $(STAMP)
	$(VENV)/bin/tumorsynth web

# Headless Chromium for the web tests (Testing/Web): Debian's chromium-headless-shell, installed
# with apt when missing and this is root; otherwise the web tests skip and say why.
CHROMIUM_PKG ?= chromium-headless-shell
chromium:
	@if command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing $(CHROMIUM_PKG) with apt-get for the web tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q $(CHROMIUM_PKG) >/dev/null 2>&1 \
	    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(CHROMIUM_PKG) >/dev/null 2>&1; } \
	    || echo "could not install $(CHROMIUM_PKG): the web tests will be skipped"; \
	else echo "no Chromium and no root to install it (apt-get install $(CHROMIUM_PKG)): the web tests will be skipped"; fi

bench: $(STAMP)
	$(PY) benchmarks/bench_synthesis.py
	$(PY) benchmarks/bench_cellular.py
	$(PY) benchmarks/bench_training.py

lint: $(STAMP)
	$(PIP) install --quiet ruff
	$(VENV)/bin/ruff check TumorSynthLib TumorSynthWeb TumorSynth Testing benchmarks

clean:
	rm -rf $(VENV) demo-output
