"""``avagent train planner-export``: one trained LoRA, two servers.

* ``OUT/peft/``: the PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)
  that vLLM serves with ``--enable-lora --lora-modules avagent-planner=OUT/peft``;
* ``OUT/planner-lora.gguf``: the same adapter for llama.cpp (``Llama(lora_path=...)``, the
  embedded planner's ``AVAGENT_PLANNER_LORA``), converted by llama.cpp's own
  ``convert_lora_to_gguf.py``. That script ships in llama-cpp-python's source distribution: it
  is fetched with ``pip download`` into ``~/.cache/avagent/llama.cpp-src`` (never committed) and
  run with the ``gguf-py`` beside it: PyPI's ``gguf`` 0.19.0 is older than this converter
  (``module 'gguf' has no attribute 'LazyChunkedTensor'``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from avagent.errors import ParameterError
from avagent.training.sft import TrainingError, base_model_dir

logger = logging.getLogger(__name__)

LLAMA_CPP_PYTHON = "0.3.36"  # the version whose converter matches the llama.cpp we build
GGUF_NAME = "planner-lora.gguf"


def src_root() -> Path:
    env = os.environ.get("AVAGENT_LLAMA_SRC")
    return Path(env) if env else Path.home() / ".cache" / "avagent" / "llama.cpp-src"


def converter() -> Path:
    """``convert_lora_to_gguf.py`` from the llama-cpp-python sdist, fetched once."""
    root = src_root()
    base = root / f"llama_cpp_python-{LLAMA_CPP_PYTHON}" / "vendor" / "llama.cpp"
    script = base / "convert_lora_to_gguf.py"
    if script.is_file() and (base / "conversion" / "__init__.py").is_file() and (
            base / "gguf-py" / "gguf" / "__init__.py").is_file():
        return script
    root.mkdir(parents=True, exist_ok=True)
    sdist = root / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    if not sdist.is_file():
        logger.info("fetching the llama-cpp-python %s sdist for its LoRA converter", LLAMA_CPP_PYTHON)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", str(root)],
            capture_output=True, text=True, timeout=900)
        if proc.returncode != 0 or not sdist.is_file():
            raise TrainingError("pip download llama-cpp-python failed: "
                                + (proc.stderr or proc.stdout).strip()[-300:])
    keep = ("vendor/llama.cpp/convert_lora_to_gguf.py", "vendor/llama.cpp/convert_hf_to_gguf.py",
            "vendor/llama.cpp/conversion/", "vendor/llama.cpp/gguf-py/")
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers()
                   if any(m.name.split("/", 1)[-1].startswith(k) for k in keep)]
        tar.extractall(root, members=members, filter="data")
    if not script.is_file():
        raise TrainingError(f"{sdist} has no {script.relative_to(root)}")
    return script


def export(adapter: str | Path, out: str | Path, *, base: str = "smollm2") -> dict[str, Any]:
    """Write ``OUT/peft`` and ``OUT/planner-lora.gguf`` from a PEFT adapter folder."""
    adapter, out = Path(adapter), Path(out)
    if not (adapter / "adapter_config.json").is_file():
        raise ParameterError(f"adapter={str(adapter)!r} is not a PEFT adapter folder "
                             "(no adapter_config.json): run `avagent train planner` first")
    out.mkdir(parents=True, exist_ok=True)
    base_dir = base_model_dir(base)
    peft_dir = out / "peft"
    tmp = out / "peft.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(adapter, tmp)
    # vLLM and llama.cpp look the base up from the adapter config: point it at the folder used.
    cfg_path = tmp / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base_dir
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    shutil.rmtree(peft_dir, ignore_errors=True)
    tmp.replace(peft_dir)
    gguf_path = out / GGUF_NAME
    with tempfile.TemporaryDirectory(dir=out) as work:
        partial = Path(work) / GGUF_NAME
        env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}  # the sdist's gguf
        proc = subprocess.run(
            [sys.executable, str(converter()), "--base", base_dir, "--outtype", "f16",
             "--outfile", str(partial), str(peft_dir)],
            capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0 or not partial.is_file():
            raise TrainingError("convert_lora_to_gguf failed: "
                                + (proc.stderr or proc.stdout).strip()[-600:])
        partial.replace(gguf_path)
    return {"peft": str(peft_dir), "gguf": str(gguf_path), "base": base_dir,
            "gguf_bytes": gguf_path.stat().st_size}


# -- loading back -----------------------------------------------------------------------------------
def generate_peft(base: str, prompt_messages: list[dict[str, str]], adapter: str | Path | None,
                  max_new_tokens: int = 40) -> str:
    """Greedy answer of the base model (with the PEFT ``adapter`` when given) via transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = base_model_dir(base)
    tok = AutoTokenizer.from_pretrained(base_dir)
    model: Any = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    enc: Any = tok.apply_chat_template(prompt_messages, add_generation_prompt=True, tokenize=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return str(tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))


def generate_gguf(model_path: str | Path, prompt_messages: list[dict[str, str]],
                  lora_path: str | Path | None, max_tokens: int = 40) -> str:
    """Greedy answer of a GGUF model (with the GGUF ``lora_path`` when given) via llama.cpp."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(model_path), lora_path=str(lora_path) if lora_path else None,
                n_ctx=2048, n_threads=1, verbose=False, seed=0)
    try:
        out = llm.create_chat_completion(messages=prompt_messages, max_tokens=max_tokens,
                                         temperature=0.0)
        return str(out["choices"][0]["message"]["content"])
    finally:
        llm.close()


# -- command line -----------------------------------------------------------------------------------
def add_arguments(p: Any) -> None:
    p.add_argument("--adapter", default="runs/planner-lora/adapter",
                   help="the PEFT folder `avagent train planner` wrote (runs/planner-lora/adapter)")
    p.add_argument("--out", default="runs/planner-export", help="export folder")
    p.add_argument("--base", default="smollm2", help="base model the adapter was trained on")


def run(args: Any) -> int:
    info = export(args.adapter, args.out, base=args.base)
    print(json.dumps(info))
    print(f"llama.cpp: AVAGENT_PLANNER_LORA={info['gguf']} avagent repair --planner llm ...")
    print(f"vLLM: --enable-lora --lora-modules avagent-planner={info['peft']}")
    return 0
