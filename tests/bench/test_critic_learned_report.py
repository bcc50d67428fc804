"""The benchmark page's learned-critic table: rendered from docs/benchmarks/critic-learned.json
(the results of `avagent train critic --bench SIZE`), and the page says what that file says."""

from __future__ import annotations

import json
from pathlib import Path

from avagent.bench.report import render_learned_critic

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _check(**kw: object) -> dict[str, object]:
    base = {"n": 14, "within_case_alignment_si_sdr": 0.5, "within_case_alignment_cases": 2,
            "within_case_sync_offset": None, "within_case_sync_cases": 0,
            "spearman_alignment_si_sdr": 0.25, "spearman_sync_offset_all": -0.125,
            "acceptable": 6, "passes": 3}
    return {**base, **kw}


def test_a_column_per_scorer_and_suite_with_the_runs_provenance() -> None:
    assert render_learned_critic(None) == []
    learned = {"command": "avagent train critic ... --bench SIZE", "commit": "abc1234",
               "date": "2026-12-02", "checkpoint": "a tiny model",
               "tiny": {"embedded": _check(), "learned": _check(passes=0, n=14),
                        "offset_within_1_frame": {"hand_made": 0.0, "learned": 1.0},
                        "timing_cases": 1}}
    lines = render_learned_critic(learned)
    text = "\n".join(lines)
    assert "| check | embedded, tiny | learned, tiny |" in text and "`abc1234`" in text
    row = {ln.split(" | ")[0]: ln for ln in lines if ln.startswith("| ")}
    assert row["| within a case: Spearman(alignment, SI-SDR)"].endswith(
        "| 0.50 (2 cases) | 0.50 (2 cases) |")
    assert "none (0 cases)" in row["| within a case: Spearman(sync, −abs residual offset)"]
    assert row["| outputs passing 0.85 on both scores"].endswith("| 3 | 0 |")
    offsets = next(v for k, v in row.items() if k.startswith("| offset within"))
    assert offsets.endswith("| 0 of 1 (hand-made) | 1 of 1 |")


def test_the_page_holds_the_table_of_the_committed_results() -> None:
    learned = json.loads((DOCS / "benchmarks" / "critic-learned.json").read_text())
    page = (DOCS / "benchmarks.md").read_text()
    assert "\n".join(render_learned_critic(learned)) in page
