"""The untuned split (bench/holdout.py) and issue 11's split targets (bench/report_split.py)."""

from __future__ import annotations

from avagent.bench import holdout
from avagent.bench.report_split import SPLITS, render_split, split_targets

SOURCES = ["video:mp4.mp4", "event:speech0", "event:tabla", "event:drums0",
           "video:bigbuckbunny.mp4", "event:speech3", "event:guitar", "event:drums1"]


def test_split_is_seeded_by_name_and_stable():
    held = [n for n in SOURCES if holdout.untuned(n)]
    # the same on every call and independent of which other sources exist
    assert held == [n for n in reversed(SOURCES) if holdout.untuned(n)][::-1]
    subset = SOURCES[2:6]
    assert [n for n in subset if holdout.untuned(n)] == [n for n in held if n in subset]
    assert all(holdout.untuned(n) != holdout.tuned(n) for n in SOURCES)
    # seed 0 holds out one real video and two recordings (what the published page names)
    assert held == ["event:speech0", "video:bigbuckbunny.mp4", "event:drums1"]
    # another seed gives another split: the hash, not the name order, decides
    assert [n for n in SOURCES if holdout.untuned(n, seed=1)] != held


def test_share_is_about_a_third_over_many_names():
    names = [f"event:clip{i}" for i in range(3000)]
    share = sum(holdout.untuned(n) for n in names) / len(names)
    assert 0.30 < share < 0.37


def _case(source, kind, family, content, acceptable, **row):
    base = {"acceptable": acceptable, "gain_db": 0.0, "error": None, **row}
    return {"source": source, "video_kind": kind, "family": family, "content": content,
            "faults": [family], "systems": {
                "none": {"acceptable": family == "clean", "gain_db": 0.0, "error": None,
                         "gap_error_db": 0.0 if family == "dropouts" else None},
                "rules": base, "oracle": {"acceptable": True, "gain_db": 5.0, "error": None},
                "deepfilternet3": {"acceptable": True, "gain_db": 8.0, "error": None}}}


def test_split_targets_count_each_split_apart():
    # untuned: event:speech0, video:bigbuckbunny.mp4; tuned: video:mp4.mp4, event:tabla
    cases = [
        _case("video:mp4.mp4", "video", "clean", "music", True, control_si_sdr=60.0),
        _case("video:bigbuckbunny.mp4", "video", "clean", "ambience", True, control_si_sdr=12.0),
        _case("video:mp4.mp4", "video", "noise", "music", True, gain_db=-2.0),
        _case("event:tabla", "event", "clipped", "music", False, gain_db=1.0),
        _case("event:speech0", "event", "noise", "speech", True, gain_db=7.8),
        _case("event:speech0", "event", "dropouts", "speech", True, gaps=0, gap_error_db=-3.0),
    ]
    res = {"meta": {"systems": ["none", "rules", "oracle", "deepfilternet3"]}, "cases": cases}
    rows = {r[0].split(":")[0]: r for r in split_targets(res)}
    cols = {k: i + 1 for i, k in enumerate(SPLITS)}
    kept = rows["clean controls kept (≥ 30 dB vs input)"]
    assert kept[cols["all"]] == "50 % (n=2)"
    assert kept[cols["tuned"]] == "100 % (n=1)" and kept[cols["untuned"]] == "0 % (n=1)"
    assert kept[-1] == "**misses**"
    acc = rows["corrupted acceptable"]
    assert acc[cols["all"]] == "75 % (n=4)"
    assert acc[cols["real video"]] == "100 % (n=1)"
    assert acc[cols["event (rendered picture)"]] == "67 % (n=3)"
    assert acc[cols["tuned"]] == "50 % (n=2)" and acc[cols["untuned"]] == "100 % (n=2)"
    sn = rows["speech in noise"]
    assert sn[cols["all"]] == "+7.8 vs +8.0 dB (n=1)" and sn[-1] == "holds"
    assert sn[cols["real video"]] == "–"
    music = next(r for r in split_targets(res) if r[0].startswith("music/ambience"))
    assert music[cols["all"]] == "-2.0 dB; 1 of 2" and music[-1] == "**misses**"
    drop = next(r for r in split_targets(res) if r[0].startswith("dropouts"))
    assert drop[cols["untuned"]] == "100 % filled; -3.0 vs +0.0 dB; 1 of 1 below" and drop[-1] == "holds"
    page = "\n".join(render_split(res))
    assert "`event:speech0`, `video:bigbuckbunny.mp4`" in page


def test_critic_on_clean_counts_repairs_scored_above_the_input():
    from avagent.bench.report_split import critic_on_clean

    def clean(source, none, others):
        systems = {"none": {"critic": {"alignment": none}}}
        systems.update({f"s{i}": {"critic": {"alignment": a}} for i, a in enumerate(others)})
        return {"source": source, "video_kind": "event", "family": "clean", "systems": systems}
    res = {"cases": [clean("event:tabla", 0.99, [0.98, 0.99]),       # none above: fine
                     clean("event:guitar", 0.90, [0.905, 0.5]),       # above, within the margin
                     clean("event:speech3", 0.90, [0.95])]}           # above by 0.05
    k, m, n, worst = critic_on_clean(res, lambda c: True)
    assert (k, m, n) == (2, 1, 3) and abs(worst - 0.05) < 1e-9
