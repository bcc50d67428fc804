"""The sync protocol's tables count the activity cue's own decisions beside the verdicts."""

from __future__ import annotations

from avagent.bench.sync_check import Row, cross_table, table


def _row(case: str, truth: float | None, act: float | None, *, act_ok: bool = False,
         act_wrong: bool = False, kind: str = "event") -> Row:
    return Row("event:x", kind, case, truth, "cannot_tell", None, 0.0, None, False, False, False,
               act, 6.0 if act is not None else 2.0, act_ok, act_wrong)


def test_table_reports_the_activity_cue_alone():
    rows = [
        _row("offset+300", 300.0, 302.0, act_ok=True),
        _row("offset-120", -120.0, None),
        _row("drift1.002", -6.0, None),
        _row("pal", None, 40.0, act_wrong=True),
        _row("drift1.01=", 60.0, None),
    ]
    out = table(rows)
    assert "| 1 / 1 / 1 (6.0) |" in out  # decided / correct / wrong (largest z over offsets)
    assert "activity cue alone: offsets decided 1, correct 1" in out
    assert "wrong (off by > 80 ms, PAL included) 1" in out


def test_cross_table_counts_the_cue_on_unrelated_pairs():
    rows = [_row("offset+0", None, None, kind="cross"),
            _row("offset+120", None, 90.0, act_wrong=True, kind="cross")]
    assert "the activity cue alone decided 1 (largest z 6.00" in cross_table(rows)
