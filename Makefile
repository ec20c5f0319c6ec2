# Two entry points (see README): `make demo` installs everything and runs the main job,
# `make test` installs what the tests need and runs them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install data demo test test-slow bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,plot]'
	$(PIP) install -q --no-deps torchattacks==3.5.1
	# (it requires opencv-python, the GUI build; the dev extra has the headless one)
	$(PIP) install -q --no-deps imagecorruptions==1.1.2
	touch $(STAMP)

install: $(STAMP)

data:
	@test -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz || \
	  { (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) || \
	    sudo sh -c 'apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist'; }

demo: install data
	$(VENV)/bin/dgm demo --out out/demo --overwrite

test: install
	$(PY) -m pytest -q -n 2

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(VENV)/bin/dgm bench --out out/bench
