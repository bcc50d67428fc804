"""The benchmark suite is deterministic, its verdicts follow the truth, and it runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avagent.bench import suite
from avagent.bench.evaluate import evaluate, input_metrics, judge
from avagent.bench.systems import CaseContext, run_system
from avagent.service.cli import main as cli_main

pytestmark = pytest.mark.media


@pytest.fixture(scope="module")
def tiny(media_dir: Path) -> list[suite.Case]:
    return suite.build_cases("tiny", seed=0)


def test_same_seed_same_suite(tiny: list[suite.Case]) -> None:
    again = suite.build_cases("tiny", seed=0)
    assert [c.id for c in again] == [c.id for c in tiny]
    assert suite.case_digest(again) == suite.case_digest(tiny)
    other = suite.build_cases("tiny", seed=1)
    assert suite.case_digest(other) != suite.case_digest(tiny)  # the seed reaches the faults


def test_full_suite_plants_real_noises_last() -> None:
    # adding the real noise kinds must leave every earlier fault (and so its seed) where it was
    for si in range(9):
        specs = suite.fault_specs("full", si)
        n = len(suite.NOISE_KINDS_REAL)
        assert [p["kind"] for _, p in specs[-n:]] == list(suite.NOISE_KINDS_REAL)
        assert not any(f == "noise" and p["kind"] in suite.NOISE_KINDS_REAL for f, p in specs[:-n])
        assert {p["snr_db"] for _, p in specs[-n:]} <= {0.0, 5.0, 10.0}


def test_timing_only_source_gets_its_timing_faults_at_their_seeds(tiny: list[suite.Case]) -> None:
    # a source whose own sound is not clean (the webcam's hiss) is a truth for timing alone;
    # its faults keep the indices (and so the seeds) they have in the full list
    src = tiny[0].source
    full = suite.source_faults("full", 9, src)
    only = suite.source_faults("full", 9, suite.Source(
        src.name, src.kind, src.content, src.y, src.sr, src.frames, timing_only=True))
    assert [f for _, f, _ in full] == [f for f, _ in suite.fault_specs("full", 9)]
    assert {f for _, f, _ in only} == {"offset", "drift", "pal"} and len(only) == 6
    assert all(fault in full for fault in only)


def test_tiny_suite_covers_control_single_and_mixture(tiny: list[suite.Case]) -> None:
    fams = [c.family for c in tiny]
    assert fams == ["clean", "hum", "offset", "mixture"]
    clean = tiny[0]
    assert np.array_equal(clean.y, clean.source.y)
    assert tiny[2].timing and not tiny[1].timing
    assert suite.fault_families(tiny[3]) == {"dropouts", "quiet"}


def test_rendered_picture_moves_at_the_sound_onsets(tiny: list[suite.Case]) -> None:
    import librosa

    src = tiny[0].source
    fr = src.frames
    changed = (np.abs(np.diff(fr.frames.astype(np.int16), axis=0)) > 100).sum(axis=(1, 2))
    moving = fr.times_s[1:][changed > 100]  # a jump changes the block's pixels; noise stays < 20
    onsets = librosa.onset.onset_detect(y=src.y.mean(axis=0).astype(np.float32), sr=src.sr,
                                        units="time")
    assert len(moving) >= 5
    # every jump happens within one frame after an onset
    dist = [np.min(t - onsets[onsets <= t + 1e-9]) for t in moving if np.any(onsets <= t)]
    assert max(dist) <= 1 / suite.FPS + 1e-6


def test_verdicts_follow_the_truth(tiny: list[suite.Case]) -> None:
    hum = tiny[1]
    ctx = CaseContext(hum)
    inm = input_metrics(hum)
    rows = {n: evaluate(hum, run_system(n, ctx), in_metrics=inm) for n in ("none", "oracle")}
    assert rows["oracle"]["gain_db"] > 15.0  # the known inverse removes the hum
    assert abs(rows["none"]["gain_db"]) < 1e-9
    oracle = rows["oracle"]["si_sdr_out"]
    assert judge(rows["oracle"], oracle) and not judge(rows["none"], oracle)
    shifted = tiny[2]
    row = evaluate(shifted, run_system("none", CaseContext(shifted)),
                   in_metrics=input_metrics(shifted))
    assert abs(row["offset_ms"] - 400.0) < 1.0  # the residual offset is the planted one
    assert not judge(row, None)


def test_bench_command_end_to_end(tmp_path: Path, media_dir: Path) -> None:
    out = tmp_path / "assets"
    doc, agent_doc = tmp_path / "benchmarks.md", tmp_path / "agent.md"
    code = cli_main(["bench", "--size", "tiny", "--systems", "none,remove_hum,rules,oracle",
                     "--out", str(out), "--doc", str(doc), "--agent-doc", str(agent_doc),
                     "--no-speed", "--quiet"])
    assert code == 0
    data = json.loads((out / "cases.json").read_text())
    assert data["meta"]["cases"] == 4 and data["meta"]["systems"] == ["none", "remove_hum",
                                                                        "rules", "oracle"]
    by_id = {c["id"]: c for c in data["cases"]}
    hum = by_id["speech0/hum50-5dB"]["systems"]
    assert hum["rules"]["acceptable"] and not hum["none"]["acceptable"]
    assert hum["rules"]["plan"][0][0] == "remove_hum"
    clean = by_id["speech0/clean"]["systems"]["rules"]
    assert clean["control_si_sdr"] >= 30.0  # a clean clip comes out (nearly) untouched
    for png in ("gain.png", "acceptable.png", "critic.png"):
        assert (out / png).stat().st_size > 1000
    page = doc.read_text()
    assert "## Targets" in page and "### hum (1 cases)" in page and "assets/gain.png" in page
    assert "# The agent on corrupted clips" in agent_doc.read_text()
    # the pages re-render from the JSON alone
    doc.unlink()
    assert cli_main(["bench", "--from-json", str(out / "cases.json"), "--out", str(out),
                     "--doc", str(doc), "--agent-doc", "-", "--quiet"]) == 0
    assert doc.read_text() == page


def test_bench_command_rejects_unknown_system(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                              ) -> None:
    code = cli_main(["bench", "--size", "tiny", "--systems", "none,nope", "--out", str(tmp_path),
                     "--no-speed", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and "valid" in err[0]
