"""Settings → backend: the one place that names each role's backend and its arguments."""

from __future__ import annotations

import pytest

from avagent.errors import ParameterError
from avagent.service.backends import (
    Backend,
    backend,
    backend_name,
    make_planner,
    make_scorer,
    needs_gpu,
)
from avagent.service.pipeline import RepairOptions
from avagent.service.queue import queue_for
from avagent.service.settings import Settings


def test_a_role_uses_its_setting_unless_the_job_overrides_it(tmp_path) -> None:
    s = Settings(cache_dir=tmp_path, planner="random")
    assert backend_name(s, "planner") == "random"
    assert backend_name(s, "planner", "rules") == "rules"
    assert backend_name(s, "planner", "  ") == "random"  # blank is "not given"
    assert backend(s, "scorer") == Backend("scorer", "embedded", {})
    with pytest.raises(ParameterError, match="'mixer'"):
        backend_name(s, "mixer")  # type: ignore[arg-type]


def test_model_backends_get_their_settings_fields(tmp_path) -> None:
    s = Settings(cache_dir=tmp_path, llm_base_url="http://127.0.0.1:8001/v1", llm_api_key="k",
                 planner_model="qwen-0.5b", audio_caption_model="a-cap", video_caption_model="v-cap",
                 imagebind_checkpoint=tmp_path / "ib.pth")
    assert backend(s, "planner", "llm").kwargs == {
        "base_url": "http://127.0.0.1:8001/v1", "api_key": "k", "model": "qwen-0.5b"}
    assert backend(s, "captioner", "llm").kwargs == {
        "base_url": "http://127.0.0.1:8001/v1", "api_key": "k", "model": "a-cap",
        "video_model": "v-cap"}
    assert backend(s, "scorer", "imagebind").kwargs == {"checkpoint": tmp_path / "ib.pth"}


def test_instances_come_from_the_registries(tmp_path) -> None:
    s = Settings(cache_dir=tmp_path)
    assert make_planner(s).name == "rules"
    assert make_planner(s, "random").name == "random"
    assert type(make_scorer(s)).__name__ == "EmbeddedScorer"
    with pytest.raises(ParameterError, match=r"'nope'.*embedded"):
        make_scorer(Settings(cache_dir=tmp_path, scorer="nope"))


def test_gpu_routing_follows_the_backends(tmp_path) -> None:
    s = Settings(cache_dir=tmp_path)
    assert not needs_gpu(s) and queue_for({}, s) == s.cpu_queue
    assert needs_gpu(s, "llm") and queue_for({"planner": "llm"}, s) == s.gpu_queue
    assert needs_gpu(Settings(cache_dir=tmp_path, captioner="llm"))
    assert needs_gpu(Settings(cache_dir=tmp_path, scorer="imagebind"), "rules")


def test_repair_options_take_the_settings_defaults(tmp_path) -> None:
    s = Settings(cache_dir=tmp_path, planner="random", max_rounds=2, threshold=0.5)
    o = RepairOptions.from_settings(s)
    assert (o.planner, o.max_rounds, o.threshold, o.outputs) == ("random", 2, 0.5,
                                                                 ("wav", "video", "report"))
    o = RepairOptions.from_settings(s, planner="rules", max_rounds=1, threshold=0.9,
                                    outputs=["wav"])
    assert (o.planner, o.max_rounds, o.threshold, o.outputs) == ("rules", 1, 0.9, ("wav",))
    with pytest.raises(ParameterError, match="outputs=\\[\\]"):
        RepairOptions.from_settings(s, outputs=[]).check()
    with pytest.raises(ParameterError, match=r"max_rounds=11 must be within 1\.\.10"):
        RepairOptions.from_settings(s, max_rounds=11).check()
