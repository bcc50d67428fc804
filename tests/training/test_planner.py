"""Planner training: SFT data from known faults, LoRA SFT on a reduced SmolLM2, export for vLLM
(PEFT folder) and llama.cpp (GGUF), each loaded back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avagent.errors import ParameterError

pytest.importorskip("peft")
pytest.importorskip("transformers")

from avagent.training import planner_data as pd
from avagent.training.sft import SFTConfig, TrainingError, train


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("planner-data")
    pd.generate(pd.DataConfig.tiny(str(out)))
    return out


def _records(data: Path) -> list[dict]:
    return list(pd.read_jsonl(data / "records.jsonl"))


def test_splits_are_by_source_clip(data: Path) -> None:
    records = _records(data)
    split_of: dict[str, set[str]] = {}
    for r in records:
        split_of.setdefault(r["source"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of.values()), split_of
    assert {next(iter(s)) for s in split_of.values()} == set(pd.SPLITS)
    # the split files hold the same examples, each in the split of its source
    for split in pd.SPLITS:
        rows = list(pd.read_jsonl(data / f"{split}.jsonl"))
        assert rows and all(split_of[r["source"]] == {split} for r in rows)
    manifest = json.loads((data / "manifest.json").read_text())
    assert sum(manifest["examples"].values()) == len(records)


def test_assign_splits_is_seeded_and_disjoint() -> None:
    names = [f"speech:{i}" for i in range(20)]
    a = pd.assign_splits(names, 3, (0.7, 0.15, 0.15))
    assert a == pd.assign_splits(list(reversed(names)), 3, (0.7, 0.15, 0.15))
    assert a != pd.assign_splits(names, 4, (0.7, 0.15, 0.15))
    assert sorted(a.values()).count("test") == 3
    with pytest.raises(ParameterError, match="split="):
        pd.assign_splits(names, 0, (0.5, 0.5, 0.5))


def test_messages_are_the_planners_prompt_and_the_correct_plan(data: Path) -> None:
    from avagent.agent.prompts import PlanAnswer, planner_messages
    from avagent.agent.state import Round
    from avagent.perception.facts import Facts

    records = {r["id"]: r for r in _records(data)}
    rows = [row for s in pd.SPLITS for row in pd.read_jsonl(data / f"{s}.jsonl")]
    reflections = 0
    for row in rows:
        r = records[row["id"]]
        history = [Round.model_validate(h) for h in r["history"]]
        prompt = planner_messages(Facts.model_validate(r["facts"]), r["captions"], history)
        assert row["messages"][:-1] == prompt
        answer = PlanAnswer.model_validate_json(row["messages"][-1]["content"])
        assert [(s.action, s.params) for s in answer.steps] == [
            (s["action"], s["params"]) for s in r["target"]["steps"]]
        assert all(s.reasoning for s in answer.steps)
        if history:
            reflections += 1
            weak = PlanAnswer.model_validate_json(row["messages"][2]["content"])
            assert [(s.action, s.params) for s in weak.steps] != [
                (s.action, s.params) for s in answer.steps]
            assert "Feedback:" in row["messages"][3]["content"]
    assert reflections >= 1


def test_make_case_is_deterministic(data: Path) -> None:
    first = next(r for r in _records(data) if r["case"] == 0 and not r["history"])
    again = pd.make_case(first["source"], 0, 0, 2.5, False, False)[0]
    for key in ("facts", "captions", "target", "truth", "family"):
        assert again[key] == first[key], key


def test_captions_are_the_graphs(data: Path) -> None:
    """The data's captions are what the agent graph hands the planner for the same facts."""
    import numpy as np

    from avagent.agent.graph import run_agent
    from avagent.agent.state import AgentContext, Plan
    from avagent.perception.facts import Facts
    from avagent.reflection.scorers import get_scorer

    r = _records(data)[0]
    facts = Facts.model_validate(r["facts"])
    seen: list[dict[str, str]] = []

    class Spy:
        name = "spy"

        def plan(self, facts, captions, history):  # type: ignore[no-untyped-def]
            seen.append(captions)
            return Plan(steps=[], planner="spy")

    src = pd.load_source(r["source"], 2.5)
    ctx = AgentContext(planner=Spy(), scorer=get_scorer("embedded"), max_rounds=1,
                       perceive=lambda *a, **k: facts)
    run_agent(np.asarray(src.y), sr=src.sr, frames=src.frames, context=ctx)
    assert seen == [r["captions"]]


def test_observable_plan_leaves_out_what_was_not_measured() -> None:
    from avagent.bench.corrupt import RepairStep, Truth
    from avagent.perception.facts import AudioFacts, Facts, SyncFacts

    audio = AudioFacts(duration_s=3, sample_rate=48000, channels=1, silent=False,
                       loudness_lufs=-40.0, noise_floor_db=-80, snr_db=40)
    truth = Truth(family="mixture", repair=[
        RepairStep(action="wiener"), RepairStep(action="speed", params={"offset_ms": -300.0}),
        RepairStep(action="volume", params={"target_lufs": -23.0})])
    blind = Facts(audio=audio, sync=SyncFacts(verdict="cannot_tell"))
    plan, notes = pd.observable_plan(truth, blind)
    assert [s.action for s in plan.steps] == ["volume"]
    assert len(notes) == 2 and "-40.0 LUFS" in plan.steps[0].reasoning
    seen = Facts(audio=audio, sync=SyncFacts(verdict="offset", audio_delay_ms=290.0,
                                             confidence=0.7))
    plan, _ = pd.observable_plan(truth, seen)
    assert [s.action for s in plan.steps] == ["speed", "volume"]
    assert "late" in plan.steps[0].reasoning and "+290 ms" in plan.steps[0].reasoning


# -- SFT ---------------------------------------------------------------------------------------------
def test_sft_lowers_the_loss_and_resume_continues_exactly(data: Path, tmp_path: Path) -> None:
    # float64: in float32 the last bits of a step depend on where MKL finds its operands in
    # memory, and a random tiny model amplifies them to ~1e-3 of the loss in two steps (seen in
    # whole runs, never alone, even under MKL_CBWR=STRICT); in float64 they stay far below 1e-4,
    # so a resume that restores anything wrong (optimiser, schedule, data position) still shows
    whole = train(SFTConfig.tiny(str(data), str(tmp_path / "a"), steps=4, snapshot_steps=[2],
                                 dtype="float64"), progress=False)
    assert whole["steps"] == 4 and Path(whole["adapter"], "adapter_config.json").is_file()
    # the step-2 snapshot is a loadable adapter that differs from the final one
    from safetensors.numpy import load_file

    (snap,) = whole["snapshots"]
    early = load_file(str(Path(snap, "adapter_model.safetensors")))
    final = load_file(str(Path(whole["adapter"], "adapter_model.safetensors")))
    assert early.keys() == final.keys()
    assert any(abs(early[k] - final[k]).max() > 0 for k in final)
    with pytest.raises(ParameterError, match="snapshot_steps"):
        SFTConfig.tiny(str(data), str(tmp_path / "c"), steps=4, snapshot_steps=[5])
    val = whole["val"]
    assert val[0]["step"] == 0 and val[-1]["step"] == 4
    assert val[-1]["loss"] < val[0]["loss"] - 1e-3, val
    cfg_b = SFTConfig.tiny(str(data), str(tmp_path / "b"), steps=4, dtype="float64")
    part = train(cfg_b, progress=False, stop_after=2)
    assert part["steps"] == 2 and "adapter" not in part
    assert json.loads((tmp_path / "b/checkpoint/state.json").read_text())["step"] == 2
    rest = train(cfg_b, resume=True, progress=False)
    log_a = json.loads((tmp_path / "a/checkpoint/state.json").read_text())["log"]
    log_b = json.loads((tmp_path / "b/checkpoint/state.json").read_text())["log"]
    assert [r["step"] for r in log_b] == [1, 2, 3, 4]
    assert [r["loss"] for r in log_b] == pytest.approx([r["loss"] for r in log_a], abs=1e-4)
    assert rest["val"][-1]["loss"] == pytest.approx(val[-1]["loss"], abs=1e-4)


def test_non_finite_loss_stops_the_run(data: Path, tmp_path: Path) -> None:
    cfg = SFTConfig.tiny(str(data), str(tmp_path), steps=4, lr=1e30, max_grad_norm=1e30,
                         eval_every=100, warmup_steps=1)
    with pytest.raises(TrainingError, match=r"loss is (nan|inf)"):
        train(cfg, progress=False)


def test_configs_parse_and_refuse_unknown_keys(tmp_path: Path) -> None:
    gpu = SFTConfig.from_file("planner_vicuna7b_gpu")
    assert gpu.base == "lmsys/vicuna-7b-v1.5" and gpu.device == "cuda" and gpu.chat_template
    assert Path(gpu.chat_template).is_file()
    assert SFTConfig.from_file("planner_smollm2_cpu").base == "smollm2"
    bad = tmp_path / "bad.toml"
    bad.write_text('base = "smollm2"\nlearning_rate = 1\n')
    with pytest.raises(ParameterError, match="learning_rate"):
        SFTConfig.from_file(bad)
    with pytest.raises(ParameterError, match="steps=0"):
        SFTConfig.from_dict({"steps": 0})


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from avagent.service.cli import main

    assert main(["train", "planner", "--config", str(tmp_path / "none.toml")]) == 2
    assert main(["train", "planner-export", "--adapter", str(tmp_path), "--out",
                 str(tmp_path / "x")]) == 2
    assert main(["train", "planner", "--snapshot-steps", "10,x"]) == 2
    assert main(["train", "planner-eval", "--bench", "tiny", "--stride", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and "none.toml" in err[0] and "adapter_config.json" in err[1]
    assert "--snapshot-steps" in err[2] and "--stride=0" in err[3]


# -- export ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-4 adapter with random (non-zero) weights on the real SmolLM2, exported."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from avagent.training.planner_export import export
    from avagent.training.sft import base_model_dir

    root = tmp_path_factory.mktemp("planner-export")
    model = AutoModelForCausalLM.from_pretrained(base_model_dir("smollm2"), dtype=torch.float32)
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                      init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(root / "adapter")
    info = export(root / "adapter", root / "out")
    assert Path(info["gguf"]).stat().st_size > 1000
    return root / "out"


PROMPT = [{"role": "user", "content": "Name one colour."}]


def test_peft_folder_loads_back_and_changes_the_output(exported: Path) -> None:
    from avagent.training.planner_export import generate_peft

    cfg = json.loads((exported / "peft" / "adapter_config.json").read_text())
    assert Path(cfg["base_model_name_or_path"], "config.json").is_file()
    plain = generate_peft("smollm2", PROMPT, None, max_new_tokens=12)
    tuned = generate_peft("smollm2", PROMPT, exported / "peft", max_new_tokens=12)
    assert plain.strip() and tuned != plain


def test_gguf_lora_loads_in_llama_cpp_and_changes_the_output(exported: Path) -> None:
    pytest.importorskip("llama_cpp")
    from avagent.training.planner_export import generate_gguf
    from avagent.training.sft import smollm2_gguf

    plain = generate_gguf(smollm2_gguf(), PROMPT, None, max_tokens=12)
    tuned = generate_gguf(smollm2_gguf(), PROMPT, exported / "planner-lora.gguf", max_tokens=12)
    assert plain.strip() and tuned != plain


def test_reasoning_weight_down_weights_only_the_reasoning_text(data: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from avagent.training.sft import (
        base_model_dir,
        collate,
        forward_loss,
        load_examples,
        load_tokenizer,
        reasoning_mask,
    )

    base = base_model_dir("smollm2-tiny")
    tok = load_tokenizer(base)
    answer = tok('{"steps": [{"action": "volume", "params": {}, "reasoning": "too quiet"}]}')
    mask = reasoning_mask(tok, answer["input_ids"])
    inside = tok.decode([i for i, m in zip(answer["input_ids"], mask, strict=True) if m])
    assert inside.strip() == "too quiet"
    plain, _ = load_examples(data / "train.jsonl", tok, 4096, limit=2)
    light, _ = load_examples(data / "train.jsonl", tok, 4096, limit=2, reasoning_weight=0.1)
    (_, labels, w1), (_, _, w2) = plain[0], light[0]
    answer_at = [i for i, lab in enumerate(labels) if lab != -100]
    assert all(w1[i] == 1.0 for i in answer_at) and sum(w1) == len(answer_at)
    assert {w2[i] for i in answer_at} == {0.1, 1.0}
    assert all(w == 0 for i, w in enumerate(w2) if labels[i] == -100)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    with torch.no_grad():
        ref = forward_loss(model, collate([plain[0]], 0), "cpu")
        same = forward_loss(model, collate([plain[0]], 0), "cpu", weighted=True)
        other = forward_loss(model, collate([light[0]], 0), "cpu", weighted=True)
    assert float(same) == pytest.approx(float(ref), rel=1e-5)
    assert abs(float(other) - float(ref)) > 1e-4
