"""Render a benchmark run (the JSON of :func:`avagent.bench.run.run_bench`) as markdown, JSON and plots.

``write_report`` writes ``OUT/cases.json`` (every case, every system), ``OUT/*.png`` and the
markdown page (``docs/benchmarks.md``); ``render_agent`` renders the agent's own page
(``docs/agent.md``) from the same run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avagent.bench.markdown import number, percent, table
from avagent.bench.report_plots import plot_critic, plot_gain_heatmap
from avagent.bench.report_split import render_split
from avagent.bench.report_stats import (
    AGENT,
    FAMILY_ORDER,
    acceptance,
    benchmark_targets,
    family_stats,
    family_table,
    finite_values,
    holds,
    mean_gain,
    rows_of,
)


# -- pages -----------------------------------------------------------------------------------------
def _meta_lines(results: dict[str, Any], command: str) -> list[str]:
    m = results["meta"]
    lines = [f"Measured with `{command}` on {m['machine']}, {m['date']}, commit `{m['commit']}`: "
             f"{m['cases']} cases (suite `{m['size']}`, seed {m['seed']}, digest "
             f"`{m['digest'][:12]}`), {len(m['systems'])} systems, {m['run_s']:.0f} s in all."]
    if m.get("unavailable"):
        lines.append("Not run here: " + "; ".join(f"`{k}` ({v})" for k, v in m["unavailable"].items())
                     + ".")
    return lines


def render_benchmarks(results: dict[str, Any], command: str, asset_dir: str,
                      learned: dict[str, Any] | None = None) -> str:
    systems = results["meta"]["systems"]
    out = ["# Benchmark: repair measured against the clean truth", "",
           *_meta_lines(results, command), "",
           "Every case is a clean real clip with its picture, corrupted in a known way "
           "(`bench/suite.py`, `bench/corrupt.py`); every system's output is measured against the "
           "clean original (`bench/evaluate.py`). *Acceptable* is the truth's verdict on an "
           "output: SI-SDR ≥ 15 dB against the clean (or within 3 dB of the oracle where even "
           "the oracle stays under 15 dB: damage nobody can undo), residual offset ≤ 45 ms, no "
           "gap left, loudness inside [-33, -9] LUFS (1 LU of slack) or within 1 LU of the clean original's. Event clips are real recordings "
           "with a rendered picture that moves with the sound; video clips are real files whose "
           "picture has no clear audio-visual events.", "",
           "Two metric notes. SI-SDR punishes a refilled dropout (a plausible fill differs "
           "from the lost original more than silence does), so dropout repair is judged on gaps "
           "left and acceptability, not on SI-SDR gain; and SI-SDR is capped at 60 dB, so a "
           "pure level change reads 60 dB in and any later touch reads as a (harmless) loss. "
           "Cases whose only faults are timing are judged on timing: residual offset at the "
           "middle and the end, and pitch. The offset is the lag that best pairs both the "
           "amplitude envelopes and the waveforms, so a drifting clip reads its drift, not a "
           "repeat of its music (`bench/metrics.residual_offset_ms`). The drift family's audio "
           "clock runs 0.5-5 % off with the sound cut or padded to the picture's length: the "
           "stream durations cannot tell, only the content can.", "",
           "## Targets", "", *table(["target", "measured", "verdict"], benchmark_targets(results)),
           "", *render_split(results), f"![mean SI-SDR gain per family and system]({asset_dir}/gain.png)", "",
           f"![share acceptable per family and system]({asset_dir}/acceptable.png)", "",
           "## Per family", "",
           "Systems as columns: `none` (the input), each action alone with its defaults, the "
           "peers, the agent with the `random` and `rules` planners (3 rounds, threshold 0.85), "
           "and `oracle` (the known inverse of the fault). Real-time factors are per system "
           "on one case at a time (2 cores shared with the measuring), the agent's including its "
           "perception.", ""]
    for fam in FAMILY_ORDER:
        if any(c["family"] == fam for c in results["cases"]):
            out += family_table(results, fam, systems)
    out += render_critic(results, asset_dir)
    out += render_learned_critic(learned)
    out += ["## Noise, per kind", "", *noise_kind_table(results, systems), ""]
    out += ["## Reproduce", "", "```sh", "make setup media", f"{command}", "```", "",
            f"Every case and system is in `{asset_dir}/cases.json`.", ""]
    return "\n".join(out)


def noise_kind_table(results: dict[str, Any], systems: list[str]) -> list[str]:
    kinds = sorted({c["truth"]["params"]["kind"] for c in results["cases"] if c["family"] == "noise"})
    show = [s for s in systems if s not in ("remove_hum", "fill_blanks", "volume")]
    rows = []
    for k in kinds:
        for content in ("speech", "other"):
            def pred(c: dict[str, Any], k: str = k, content: str = content) -> bool:
                return (c["family"] == "noise" and c["truth"]["params"]["kind"] == k
                        and (c["content"] == "speech") == (content == "speech"))
            cells = [number(mean_gain(results, s, pred)) for s in show]
            if any(c != "–" for c in cells):
                rows.append([f"{k} ({content})", *cells])
    return ["Mean SI-SDR gain (dB) per noise kind and content (0, 5, 10 dB SNR averaged).", "",
            *table(["noise", *show], rows)]


def render_critic(results: dict[str, Any], asset_dir: str) -> list[str]:
    cr = results.get("critic")
    if not cr:
        return []
    return [
        "## The critic: can reflection's scores be trusted?", "",
        f"The embedded scorer re-scored {cr['n']} outputs (systems "
        f"{', '.join('`' + s + '`' for s in results['meta']['critic_systems'])} on every case), "
        "as the loop's reflect step does.", "",
        "Within a case: the Spearman correlation between the score and the truth across the "
        "versions of one clip (what the loop needs: which version is better), averaged over the "
        "cases whose versions the truth can rank; pooled: over all outputs of all cases (what "
        "an absolute threshold needs).", "",
        *table(["check", "value"], [
            [f"within a case: Spearman(alignment, SI-SDR), {cr['within_case_alignment_cases']} "
             "cases without timing faults", number(cr["within_case_alignment_si_sdr"], "{:.2f}")],
            [f"within a case: Spearman(sync, −abs residual offset), {cr['within_case_sync_cases']} "
             "timing cases", number(cr["within_case_sync_offset"], "{:.2f}")],
            ["pooled: Spearman(alignment, SI-SDR against the clean)", number(cr["spearman_alignment_si_sdr"], "{:.2f}")],
            [f"pooled: Spearman(sync, −abs residual offset), event clips ({cr['n_event']})",
             number(cr["spearman_sync_offset_event"], "{:.2f}")],
            ["pooled: Spearman(sync, −abs residual offset), all clips", number(cr["spearman_sync_offset_all"], "{:.2f}")],
            ["outputs acceptable by the truth", str(cr["acceptable"])],
            ["outputs passing 0.85 on both scores", str(cr["passes"])],
            ["precision of 'passes' for 'acceptable'", number(cr["precision"], "{:.2f}")],
            ["recall of 'passes' for 'acceptable'", number(cr["recall"], "{:.2f}")],
        ]), "", f"![critic against the truth]({asset_dir}/critic.png)", ""]


def render_learned_critic(learned: dict[str, Any] | None) -> list[str]:
    """The learned critic beside the embedded scorer, from ``critic-learned.json`` in the asset
    folder (written from ``avagent train critic --bench SIZE``'s results; not this run's)."""
    sizes = [k for k in ("tiny", "small", "full") if learned and k in learned]
    if not learned or not sizes:
        return []
    cols, rows = [], []
    for size in sizes:
        cols += [f"embedded, {size}", f"learned, {size}"]

    def cells(key: str, fmt: str = "{:.2f}", cases: str | None = None) -> list[str]:
        out = []
        for size in sizes:
            for scorer in ("embedded", "learned"):
                c = learned[size][scorer]
                v = number(c[key], fmt) if c[key] is not None else "none"
                out.append(f"{v} ({c[cases]} cases)" if cases else v)
        return out

    def offsets() -> list[str]:
        out = []
        for size in sizes:
            o, n = learned[size]["offset_within_1_frame"], learned[size]["timing_cases"]
            out += [f"{round(o[k] * n) if o[k] is not None else '–'} of {n}" + extra
                    for k, extra in (("hand_made", " (hand-made)"), ("learned", ""))]
        return out

    rows = [
        ["outputs scored", *[str(learned[s][k]["n"]) for s in sizes for k in ("embedded", "learned")]],
        ["within a case: Spearman(alignment, SI-SDR)",
         *cells("within_case_alignment_si_sdr", cases="within_case_alignment_cases")],
        ["within a case: Spearman(sync, −abs residual offset)",
         *cells("within_case_sync_offset", cases="within_case_sync_cases")],
        ["pooled: Spearman(alignment, SI-SDR)", *cells("spearman_alignment_si_sdr")],
        ["pooled: Spearman(sync, −abs residual offset), all clips", *cells("spearman_sync_offset_all")],
        ["outputs acceptable by the truth", *cells("acceptable", "{:.0f}")],
        ["outputs passing 0.85 on both scores", *cells("passes", "{:.0f}")],
        ["offset within ±1 frame, timing inputs (embedded column: hand-made estimator)", *offsets()],
    ]
    return [
        "### The learned critic beside it", "",
        f"Not from this page's run: `{learned['command']}` at commit `{learned['commit']}` "
        f"({learned['date']}), with {learned['checkpoint']}. It re-scores the same critic "
        "systems' outputs on the named suite with the embedded scorer (again, for a like-for-like "
        "column) and with `learned`; offset accuracy compares the learned sync estimate with "
        "perception's hand-made one on the inputs of the timing cases ('cannot tell' is a miss). "
        "Discussion in `docs/training.md` (Learned critic).", "",
        *table(["check", *cols], rows), ""]


def render_agent(results: dict[str, Any], command: str, speed: dict[str, Any] | None) -> str:
    systems = [s for s in ("none", "random", "rules", "oracle") if s in results["meta"]["systems"]]
    def fam(f: str) -> Callable[[dict[str, Any]], bool]:
        return lambda c: c["family"] == f
    noise = mean_gain(results, AGENT, fam("noise"))
    offs = rows_of(results, AGENT, lambda c: "offset" in c["faults"])
    within = sum(1 for r in offs if abs(r["offset_ms"]) <= 40) / len(offs) if offs else None
    worse = sum(1 for r in offs if abs(r["offset_ms"]) > abs(r["_case"]["input"]["offset_in_ms"]) + 5)
    offs_ev = [r for r in offs if r["_case"]["video_kind"] == "event"]
    within_ev = sum(1 for r in offs_ev if abs(r["offset_ms"]) <= 40) / len(offs_ev) if offs_ev else None
    loud = rows_of(results, AGENT, lambda c: c["family"] == "quiet")
    loud_ok = sum(1 for r in loud if (r["lu_outside"] or 0) <= 1.0) / len(loud) if loud else None
    ctrl = finite_values(rows_of(results, AGENT, fam("clean")), "control_si_sdr")
    t_rows = []
    ok_t: bool | None = None
    if noise is not None:
        t_rows.append(["mean SI-SDR gain on noise cases ≥ 6 dB", f"{number(noise)} dB", holds(noise >= 6)])
    if offs:
        t_rows.append(["residual offset ≤ 40 ms on ≥ 90 % of offset cases",
                       f"{percent(within)} of {len(offs)} (event clips: {percent(within_ev)} of "
                       f"{len(offs_ev)})", holds((within or 0) >= 0.9)])
        t_rows.append(["no offset case left worse than it came in", f"{worse} worse",
                       holds(worse == 0)])
    if loud:
        t_rows.append(["loudness within ±1 LU (of the accepted window) on quiet cases",
                       f"{percent(loud_ok)} of {len(loud)}", holds(loud_ok == 1.0)])
    if ctrl:
        t_rows.append(["clean controls: SI-SDR ≥ 30 dB against the input",
                       f"worst {min(ctrl):.1f} dB, {sum(1 for v in ctrl if v >= 30)}/{len(ctrl)} "
                       "at or above", holds(min(ctrl) >= 30)])
    fam_rows = []
    beats = []
    for f in FAMILY_ORDER:
        if not any(c["family"] == f for c in results["cases"]):
            continue
        a_r, a_x = acceptance(results, AGENT, fam(f)), acceptance(results, "random", fam(f))
        g_r, g_x = mean_gain(results, AGENT, fam(f)), mean_gain(results, "random", fam(f))
        if a_r is None or a_x is None:
            continue
        ok = (a_r > a_x) or (a_r == a_x and (g_r or 0) >= (g_x or 0))
        beats.append(ok)
        fam_rows.append([f, percent(a_r), percent(a_x), number(g_r), number(g_x), "yes" if ok else "**no**"])
    if beats:
        ok_t = all(beats)
        t_rows.append(["`rules` beats `random` on every family",
                       f"{sum(beats)}/{len(beats)} families", holds(ok_t)])
    if speed:
        t_rows.append(["full repair of a 10 s 720p clip ≤ 1.5× decoding its audio and frames",
                       f"{speed['ratio']:.2f}× ({speed['repair_s']:.2f} s vs {speed['decode_s']:.2f} s)",
                       holds(speed["ratio"] <= 1.5)])
        t_rows.append(["≥ 5× real time on one core", f"{speed['rtf']:.1f}×", holds(speed["rtf"] >= 5)])
    out = ["# The agent on corrupted clips", "", *_meta_lines(results, command), "",
           "The loop of the README (perceive → plan → act → reflect, 3 rounds, threshold 0.85) "
           "with the embedded backends, on the suite of `docs/benchmarks.md`: real clips with "
           "their picture, corrupted in known ways, measured against the clean original.", "",
           "## Targets", "", *table(["target", "measured", "verdict"], t_rows), ""]
    if fam_rows:
        out += ["## `rules` against `random` (the paper's baseline)", "",
                *table(["family", "acceptable, rules", "acceptable, random", "gain rules, dB",
                         "gain random, dB", "rules better"], fam_rows), ""]
    out += ["## Planner accuracy against the known fault", "",
            "Precision: share of the actions in the chosen plan that the known inverse also uses; "
            "recall: share of the known inverse's actions the chosen plan used (mean per case; "
            "an empty plan on a clean clip counts as precise).", "",
            *planner_accuracy(results), ""]
    out += ["## Per family", ""]
    for f in FAMILY_ORDER:
        if any(c["family"] == f for c in results["cases"]):
            out += family_table(results, f, systems)
    if speed:
        out += ["## Speed", "", speed["text"], ""]
    return "\n".join(out)


def planner_accuracy(results: dict[str, Any]) -> list[str]:
    rows = []
    for f in FAMILY_ORDER:
        cells = []
        for s in ("random", "rules"):
            st = family_stats(results, s, f)
            if not st["n"]:
                continue
            cells += [number(st.get("precision"), "{:.2f}"), number(st.get("recall"), "{:.2f}"),
                      number(st.get("rounds"), "{:.1f}")]
        if cells:
            rows.append([f, *cells])
    return table(["family", "precision random", "recall random", "rounds random",
                   "precision rules", "recall rules", "rounds rules"], rows)


def write_report(results: dict[str, Any], *, out_dir: Path, doc: Path | None, command: str,
                 agent_doc: Path | None = None, speed: dict[str, Any] | None = None) -> list[Path]:
    """Write cases.json, the plots and the pages; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    (out_dir / "cases.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    written.append(out_dir / "cases.json")
    systems = results["meta"]["systems"]
    plot_gain_heatmap(results, out_dir / "gain.png", systems)
    plot_gain_heatmap(results, out_dir / "acceptable.png", systems, key="acceptable")
    written += [out_dir / "gain.png", out_dir / "acceptable.png"]
    if results.get("critic"):
        plot_critic(results, out_dir / "critic.png")
        written.append(out_dir / "critic.png")
    if doc is not None:
        rel = _relpath(out_dir, doc.parent)
        doc.parent.mkdir(parents=True, exist_ok=True)
        extra = out_dir / "critic-learned.json"
        learned = json.loads(extra.read_text()) if extra.is_file() else None
        doc.write_text(render_benchmarks(results, command, rel, learned) + "\n")
        written.append(doc)
    if agent_doc is not None:
        agent_doc.parent.mkdir(parents=True, exist_ok=True)
        agent_doc.write_text(render_agent(results, command, speed) + "\n")
        written.append(agent_doc)
    return written


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target.resolve(), start.resolve())
