# The two commands a newcomer needs: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := libopencv-dev libturbojpeg0-dev pkg-config slurm-wlm munge slurmdbd mariadb-server dataset-fashion-mnist
PYTEST_ARGS ?=

.PHONY: install apt data lint demo test test-fast clean

install: $(STAMP)

# apt packages only when root (ffcv's C libraries, a local SLURM cluster for the launcher tests, Fashion-MNIST
# installed system-wide for the tests of the system install in tests/pretrain/data/test_fashion_mnist.py).
apt:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing apt packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else echo "not root: skipping apt packages (ffcv, SLURM and Fashion-MNIST system-install tests will skip; see README)"; fi

$(STAMP): pyproject.toml
	$(MAKE) apt
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,faiss-cpu,slurm,pose,localization]"
	@# ffcv compiles against libopencv/libturbojpeg; without them its tests skip with the reason.
	$(PY) -m pip install -q -e ".[ffcv]" || echo "WARNING: ffcv could not be installed (see README, 'FFCV'); its tests will skip"
	touch $(STAMP)

# Fashion-MNIST into data/ exactly as the demo fetches it (apt-get download + dpkg -x, no root),
# so the tests that train on it run instead of skipping.
data: install
	@$(PY) -m pretrain.data.fashion_mnist data >/dev/null || \
	  echo "WARNING: Fashion-MNIST could not be fetched (see the message above); its tests will skip"

lint: install
	$(PY) -m ruff check .

demo: install
	$(PY) -m launchers.demo

test: install apt lint data
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install apt lint data
	$(PY) -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
