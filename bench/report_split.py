"""Issue 11's targets and the per-family verdicts, split by source type and by the untuned split.

Every cell is measured on the cases of one split: all sources, real videos (``video:*``), real
recordings with a rendered picture (``event:*``), and the sources the rules are tuned on vs the
seeded ones they never are (:mod:`avagent.bench.holdout`). A split with no case shows "–".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from avagent.bench.evaluate import within_case_alignment
from avagent.bench.holdout import untuned
from avagent.bench.markdown import number, percent, table
from avagent.bench.report_stats import AGENT, FAMILY_ORDER, acceptance, mean_gain, rows_of

Pred = Callable[[dict[str, Any]], bool]

SPLITS: dict[str, Pred] = {
    "all": lambda c: True,
    "real video": lambda c: c["video_kind"] == "video",
    "event (rendered picture)": lambda c: c["video_kind"] == "event",
    "tuned": lambda c: not untuned(c["source"]),
    "untuned": lambda c: untuned(c["source"]),
}
# where a non-speech output is judged against doing nothing by SI-SDR gain. Not timing faults
# (judged on timing), dropouts (a fill differs from the lost original more than silence), quiet
# (SI-SDR is capped at 60 dB: a level change reads 60 dB in, any touch after it as a loss) and
# clean controls (their own row, >= 30 dB against the input) — see the page's metric notes.
MUSIC_FAMILIES = ("noise", "hum", "clipped")
CLEAN_KEPT_DB = 30.0
MUSIC_SLACK_DB = 0.5
LOOP_MARGIN = 0.02  # alignment: agent.graph.MIN_GAIN (0.01) on the mean of alignment and sync


def _and(a: Pred, b: Pred) -> Pred:
    return lambda c: a(c) and b(c)


def _n(results: dict[str, Any], pred: Pred) -> int:
    return len(rows_of(results, AGENT, pred))


def clean_kept(results: dict[str, Any], pred: Pred) -> tuple[float | None, int]:
    rows = rows_of(results, AGENT, _and(lambda c: c["family"] == "clean", pred))
    vals = [r.get("control_si_sdr") for r in rows]
    if not rows:
        return None, 0
    return sum(1 for v in vals if v is not None and v >= CLEAN_KEPT_DB) / len(rows), len(rows)


def music_worst(results: dict[str, Any], pred: Pred) -> tuple[float | None, int, int]:
    """Worst SI-SDR gain of the agent over the input on non-speech cases, and how many cases are
    worse than ``none`` by more than the slack (``none``'s gain is 0 dB by definition)."""
    rows = rows_of(results, AGENT, _and(
        lambda c: c["content"] != "speech" and c["family"] in MUSIC_FAMILIES, pred))
    gains = [float(r["gain_db"]) for r in rows if isinstance(r.get("gain_db"), (int, float))]
    if not gains:
        return None, 0, 0
    return min(gains), sum(1 for g in gains if g < -MUSIC_SLACK_DB), len(gains)


def dropouts(results: dict[str, Any], pred: Pred) -> tuple[float | None, float | None,
                                                           float | None, int, int]:
    """Share of dropout cases (alone or in a mixture) left with no gap, the mean error inside
    the gaps for the agent and for ``none`` (silence, 0 dB), the number of cases, and in how
    many of them the agent's fill is closer to the lost original than silence (below 0 dB)."""
    p = _and(lambda c: "dropouts" in c.get("faults", [c["family"]]), pred)
    rows = rows_of(results, AGENT, p)
    if not rows:
        return None, None, None, 0, 0
    filled = sum(1 for r in rows if r.get("gaps") == 0) / len(rows)

    def errs(system: str) -> list[float]:
        return [float(r["gap_error_db"]) for r in rows_of(results, system, p)
                if isinstance(r.get("gap_error_db"), (int, float))]

    def mean(v: list[float]) -> float | None:
        return sum(v) / len(v) if v else None
    below = sum(1 for v in errs(AGENT) if v < 0.0)
    return filled, mean(errs(AGENT)), mean(errs("none")), len(rows), below


def oracle_share(results: dict[str, Any], pred: Pred) -> float | None:
    p = _and(lambda c: c["family"] != "clean", pred)
    a0, aa, ao = (acceptance(results, s, p) for s in ("none", AGENT, "oracle"))
    if a0 is None or aa is None or ao is None or ao <= a0:
        return None
    return (aa - a0) / (ao - a0)


def critic_on_clean(results: dict[str, Any], pred: Pred) -> tuple[int, int, int, float | None]:
    """Clean controls on which some re-scored output's alignment is above the untouched
    input's (``none``): how many, how many by more than :data:`LOOP_MARGIN`, of how many, and the
    largest excess."""
    k = m = n = 0
    worst: float | None = None
    for c in results["cases"]:
        if c["family"] != "clean" or not pred(c):
            continue
        base = (c["systems"].get("none") or {}).get("critic")
        if not base:
            continue
        n += 1
        others = [r["critic"]["alignment"] for s, r in c["systems"].items()
                  if s != "none" and r.get("critic")]
        excess = max(others, default=base["alignment"]) - base["alignment"]
        worst = excess if worst is None else max(worst, excess)
        k += excess > 0
        m += excess > LOOP_MARGIN
    return k, m, n, worst


def _flat(results: dict[str, Any], pred: Pred) -> list[dict[str, Any]]:
    """The critic rows of the cases ``pred`` keeps, as :func:`avagent.bench.run.run_bench`
    flattens them for :func:`avagent.bench.evaluate.critic_check`."""
    return [{**r, "case_id": c["id"],
             "timing": bool(set(c.get("faults", [])) & {"offset", "drift", "pal"})}
            for c in results["cases"] if pred(c) for r in c["systems"].values()
            if r.get("critic") and r.get("si_sdr_out") is not None]


def _pct_n(v: float | None, n: int) -> str:
    return f"{percent(v)} (n={n})" if n else "–"


def split_targets(results: dict[str, Any]) -> list[list[str]]:
    """Rows: target, then one cell per split (:data:`SPLITS`), then the verdict."""
    if AGENT not in results["meta"]["systems"]:
        return []
    sp = list(SPLITS.values())
    corrupted: Pred = lambda c: c["family"] != "clean"  # noqa: E731
    speech_noise: Pred = lambda c: c["family"] == "noise" and c["content"] == "speech"  # noqa: E731
    clipped: Pred = lambda c: c["family"] == "clipped"  # noqa: E731
    rows: list[list[str]] = []

    kept = [clean_kept(results, p) for p in sp]
    rows.append([f"clean controls kept (≥ {CLEAN_KEPT_DB:.0f} dB vs input): 100 %",
                 *(_pct_n(v, n) for v, n in kept),
                 _verdict(kept[0][0] is not None and kept[0][0] >= 1.0
                          and (kept[1][0] is None or kept[1][0] >= 1.0))])

    acc = [(acceptance(results, AGENT, _and(corrupted, p)), _n(results, _and(corrupted, p)))
           for p in sp]
    a_all, a_vid, a_tuned, a_un = acc[0][0], acc[1][0], acc[3][0], acc[4][0]
    ok = (a_all is not None and a_all >= 0.9 and (a_vid is None or a_vid >= 0.85)
          and (a_tuned is None or a_un is None or abs(a_un - a_tuned) <= 0.05))
    rows.append(["corrupted acceptable: ≥ 90 %, ≥ 85 % on real video, untuned within 5 points",
                 *(_pct_n(v, n) for v, n in acc), _verdict(ok)])

    cells, ok_sn = [], None
    for i, p in enumerate(sp):
        g = mean_gain(results, AGENT, _and(speech_noise, p))
        d = mean_gain(results, "deepfilternet3", _and(speech_noise, p))
        n = _n(results, _and(speech_noise, p))
        cells.append(f"{number(g)} vs {number(d)} dB (n={n})" if n else "–")
        if i == 0 and g is not None and d is not None:
            ok_sn = g >= d - 0.5
    rows.append(["speech in noise: agent within 0.5 dB of DeepFilterNet3 (mean SI-SDR gain)",
                 *cells, _verdict(ok_sn)])

    mw = [music_worst(results, p) for p in sp]
    rows.append([f"music/ambience ({', '.join(MUSIC_FAMILIES)}): never worse than `none` by "
                 f"> {MUSIC_SLACK_DB} dB (worst gain; cases worse)",
                 *(f"{number(w)} dB; {k} of {n}" if n else "–" for w, k, n in mw),
                 _verdict(None if not mw[0][2] else mw[0][1] == 0)])

    dr = [dropouts(results, p) for p in sp]
    rows.append(["dropouts (alone or mixed): 100 % filled; gap error below silence's "
                 "(agent vs `none`, mean; cases below silence)",
                 *(f"{percent(f)} filled; {number(ea)} vs {number(en)} dB; {b} of {n} below"
                   if n else "–" for f, ea, en, n, b in dr),
                 _verdict(None if not dr[0][3] else (
                     dr[0][0] == 1.0 and dr[0][1] is not None and dr[0][2] is not None
                     and dr[0][1] < dr[0][2]))])

    cl = [(acceptance(results, AGENT, _and(clipped, p)), _n(results, _and(clipped, p)))
          for p in sp]
    rows.append(["clipped acceptable: 100 %", *(_pct_n(v, n) for v, n in cl),
                 _verdict(None if cl[0][0] is None else cl[0][0] >= 1.0)])

    cc = [critic_on_clean(results, p) for p in sp]
    rows.append(["critic: on clean controls no repair's alignment above the untouched input's "
                 f"(cases with one above; above by > {LOOP_MARGIN}, the loop's margin)",
                 *(f"{k} of {n}; {m} of {n}" if n else "–" for k, m, n, _ in cc),
                 _verdict(None if not cc[0][2] else cc[0][0] == 0)])
    wc = [within_case_alignment(_flat(results, p)) for p in sp]
    rows.append(["critic: within-case Spearman(alignment, SI-SDR) ≥ 0.7",
                 *(f"{number(v, '{:.2f}')} ({n} cases)" if n else "–" for v, n in wc),
                 _verdict(None if wc[0][0] is None else wc[0][0] >= 0.7)])

    sh = [oracle_share(results, p) for p in sp]
    rows.append(["≥ 90 % of the oracle's improvement (cases made acceptable)",
                 *("–" if v is None else f"{100 * v:.0f} %" for v in sh),
                 _verdict(None if sh[0] is None else sh[0] >= 0.9)])
    return rows


def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("holds" if ok else "**misses**")


def family_split_table(results: dict[str, Any]) -> list[str]:
    """Per family: the agent's and the oracle's share acceptable in each split."""
    rows = []
    for fam in FAMILY_ORDER:
        cells = []
        for p in SPLITS.values():
            fp = _and(lambda c, fam=fam: c["family"] == fam, p)
            n = _n(results, fp)
            cells.append(f"{percent(acceptance(results, AGENT, fp))} / "
                         f"{percent(acceptance(results, 'oracle', fp))} (n={n})" if n else "–")
        if any(c != "–" for c in cells):
            rows.append([fam, *cells])
    return table(["family", *SPLITS], rows)


def render_split(results: dict[str, Any]) -> list[str]:
    names = sorted({c["source"] for c in results["cases"]})
    held = [n for n in names if untuned(n)]
    return [
        "## By source type and the untuned split", "",
        "Issue 11's targets, each measured on all sources, on the real videos, on the real "
        "recordings with a rendered picture, and on the sources the rules and thresholds are "
        "tuned on vs those they never are: a seeded hash of the source name "
        "(`bench/holdout.py`) keeps "
        + (", ".join(f"`{n}`" for n in held) or "no source")
        + " out of all tuning. The split was drawn after the rules had been tuned on the "
        "first eight sources, so of the untuned sources only those added since "
        "(`event:game_music`, `video:movie-hello.mp4`) are unheard by the tuning; "
        "`video:wannaworktogether.mp4`, untuned by its hash, is where the second listen for a "
        "music bed under noise was developed (docs/actions.md), so it is not unheard; the others "
        "are held out from now on.",
        "",
        *table(["target", *SPLITS, "verdict (all)"], split_targets(results)), "",
        "Per family: share acceptable, agent (`rules`) / `oracle`, in each split.", "",
        *family_split_table(results), ""]
