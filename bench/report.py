"""Render a benchmark run (the JSON of :func:`avagent.bench.run.run_bench`) as markdown, JSON and plots.

``write_report`` writes ``OUT/cases.json`` (every case, every system), ``OUT/*.png`` and the
markdown page (``docs/benchmarks.md``); ``render_agent`` renders the agent's own page
(``docs/agent.md``) from the same run.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

FAMILY_ORDER = ("clean", "noise", "hum", "offset", "drift", "pal", "quiet", "clipped",
                "dropouts", "mixture")
SINGLE_TOOLS = ("spectral_subtraction", "wiener", "wavelet_denoise", "spectral_gating",
                "remove_hum", "fill_blanks", "volume", "noisereduce", "rnnoise", "deepfilternet3")
PEER_DENOISERS = ("noisereduce", "rnnoise", "deepfilternet3")
AGENT = "rules"


# -- aggregation -----------------------------------------------------------------------------------
def _vals(rows: Iterable[dict[str, Any]], key: str) -> list[float]:
    out = []
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def _mean(xs: list[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def rows_of(results: dict[str, Any], system: str, pred: Callable[[dict[str, Any]], bool] | None = None
            ) -> list[dict[str, Any]]:
    """The rows of ``system`` over the cases ``pred`` keeps, each with its case's fields."""
    out = []
    for c in results["cases"]:
        if pred is not None and not pred(c):
            continue
        r = c["systems"].get(system)
        if r is not None and r.get("error") is None:
            out.append({**r, "_case": c})
    return out


def _gain_capped(r: dict[str, Any]) -> float:
    # A fixed 400 ms offset moves SI-SDR from -50 to +60 dB; capped so one family cannot
    # drown the others in a mean over families.
    return max(-30.0, min(30.0, float(r["gain_db"])))


def family_stats(results: dict[str, Any], system: str, family: str,
                 pred: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    rows = rows_of(results, system, lambda c: c["family"] == family and (pred is None or pred(c)))
    st: dict[str, Any] = {"n": len(rows)}
    if not rows:
        return st
    st["gain_db"] = _mean(_vals(rows, "gain_db"))
    st["si_sdr_out"] = _mean(_vals(rows, "si_sdr_out"))
    st["acceptable"] = sum(1 for r in rows if r.get("acceptable")) / len(rows)
    st["abs_offset_ms"] = _median([abs(v) for v in _vals(rows, "offset_ms")])
    st["offset_end_ms"] = _median([abs(v) for v in _vals(rows, "offset_end_ms")])
    st["within_40ms"] = sum(1 for v in _vals(rows, "offset_ms") if abs(v) <= 40) / len(rows)
    st["worse_offset"] = sum(
        1 for r in rows if abs(r["offset_ms"]) > abs(r["_case"]["input"]["offset_in_ms"]) + 5)
    st["lu_outside"] = _mean(_vals(rows, "lu_outside"))
    st["true_peak_dbtp"] = max(_vals(rows, "true_peak_dbtp"), default=None)
    st["gaps"] = _mean(_vals(rows, "gaps"))
    st["gap_error_db"] = _mean(_vals(rows, "gap_error_db"))
    st["pitch_cents"] = _median([abs(v) for v in _vals(rows, "pitch_cents")])
    st["control_si_sdr"] = min(_vals(rows, "control_si_sdr"), default=None)
    st["pesq"] = _mean(_vals(rows, "pesq_out"))
    st["stoi"] = _mean(_vals(rows, "stoi_out"))
    st["rtf"] = _median(_vals(rows, "rtf"))
    st["precision"] = _mean(_vals(rows, "precision"))
    st["recall"] = _mean(_vals(rows, "recall"))
    st["rounds"] = _mean(_vals(rows, "rounds"))
    return st


# -- formatting ------------------------------------------------------------------------------------
def _f(v: Any, fmt: str = "{:+.1f}") -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not math.isfinite(v):
        return "–"
    return fmt.format(v)


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


# metric key -> (label, formatter, families it applies to or None for all)
METRICS: list[tuple[str, str, Callable[[Any], str], set[str] | None]] = [
    ("acceptable", "acceptable (truth)", _pct, None),
    # offset and drift cases are judged on timing; their SI-SDR (after re-alignment) says little
    ("gain_db", "SI-SDR gain, dB", lambda v: _f(v), set(FAMILY_ORDER) - {"offset", "drift"}),
    ("si_sdr_out", "SI-SDR out, dB", lambda v: _f(v, "{:.1f}"), set(FAMILY_ORDER) - {"offset", "drift"}),
    ("offset_end_ms", "median residual offset at the end, ms", lambda v: _f(v, "{:.0f}"),
     {"drift", "pal"}),
    ("control_si_sdr", "worst SI-SDR vs input, dB", lambda v: _f(v, "{:.1f}"), {"clean"}),
    ("pesq", "PESQ (speech)", lambda v: _f(v, "{:.2f}"), {"clean", "noise", "hum", "dropouts",
                                                          "clipped", "mixture"}),
    ("stoi", "STOI (speech)", lambda v: _f(v, "{:.2f}"), {"clean", "noise", "hum", "dropouts",
                                                          "clipped", "mixture"}),
    ("abs_offset_ms", "median residual offset, ms", lambda v: _f(v, "{:.0f}"),
     {"offset", "drift", "pal", "mixture"}),
    ("within_40ms", "residual offset ≤ 40 ms", _pct, {"offset", "drift", "pal", "mixture"}),
    ("worse_offset", "cases left later/earlier than they came", lambda v: _f(v, "{:d}"),
     {"offset", "drift", "pal", "mixture"}),
    ("pitch_cents", "median pitch error, cents", lambda v: _f(v, "{:.0f}"), {"drift", "pal"}),
    ("lu_outside", "LU outside [-33, -9] LUFS", lambda v: _f(v, "{:.1f}"),
     {"quiet", "clipped", "mixture"}),
    ("true_peak_dbtp", "highest true peak, dBTP", lambda v: _f(v, "{:.1f}"), {"quiet", "clipped"}),
    ("gaps", "gaps left (mean)", lambda v: _f(v, "{:.1f}"), {"dropouts", "mixture"}),
    ("gap_error_db", "error inside dropouts, dB", lambda v: _f(v, "{:.1f}"), {"dropouts"}),
    ("rtf", "real-time factor (median)", lambda v: _f(v, "{:.0f}×"), None),
]


def family_table(results: dict[str, Any], family: str, systems: list[str]) -> list[str]:
    stats = {s: family_stats(results, s, family) for s in systems}
    n = max((st["n"] for st in stats.values()), default=0)
    lines = [f"### {family} ({n} cases)", ""]
    rows = []
    for key, label, fmt, fams in METRICS:
        if fams is not None and family not in fams:
            continue
        cells = [fmt(stats[s].get(key)) for s in systems]
        if all(c == "–" for c in cells):
            continue
        rows.append([label, *cells])
    return [*lines, *_table(["metric", *systems], rows), ""]


# -- targets ---------------------------------------------------------------------------------------
def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("holds" if ok else "**misses**")


def mean_gain(results: dict[str, Any], system: str, pred: Callable[[dict[str, Any]], bool]) -> float | None:
    return _mean([_gain_capped(r) for r in rows_of(results, system, pred)])


def acceptance(results: dict[str, Any], system: str, pred: Callable[[dict[str, Any]], bool]) -> float | None:
    rows = rows_of(results, system, pred)
    return sum(1 for r in rows if r.get("acceptable")) / len(rows) if rows else None


def _or(v: float | None, default: float) -> float:
    return default if v is None else v


def benchmark_targets(results: dict[str, Any]) -> list[list[str]]:
    systems = results["meta"]["systems"]
    peers = [s for s in SINGLE_TOOLS if s in systems]
    out: list[list[str]] = []
    if AGENT not in systems:
        return out
    # 1. mixtures and sync/loudness/dropout families: the agent beats every single tool
    for fam in ("mixture", "offset", "drift", "pal", "quiet", "clipped", "dropouts"):
        def pred(c: dict[str, Any], fam: str = fam) -> bool:
            return c["family"] == fam
        a = acceptance(results, AGENT, pred)
        if a is None:
            continue
        best = max(((_or(acceptance(results, p, pred), 0.0), p) for p in peers), default=(0.0, "-"))
        g = mean_gain(results, AGENT, pred)
        gbest = max(((_or(mean_gain(results, p, pred), -99.0), p) for p in peers),
                    default=(0.0, "-"))
        verdict = ("holds" if a > best[0] else
                   f"ties the best single tool at {_pct(a)}" if a == best[0] else "**misses**")
        gain = ("" if fam in ("offset", "drift")  # judged on timing; SI-SDR says little there
                else f"; gain {_f(g)} vs {_f(gbest[0])} dB ({gbest[1]})")
        out.append([f"{fam}: agent beats every single tool",
                    f"acceptable {_pct(a)} vs best single tool {_pct(best[0])} ({best[1]}){gain}",
                    verdict])
    # ... and over the whole suite, where a user would have had to pick one tool for all
    def corrupted_case(c: dict[str, Any]) -> bool:
        return c["family"] != "clean"
    a_all = acceptance(results, AGENT, corrupted_case)
    if a_all is not None and peers:
        best_all = max((_or(acceptance(results, p, corrupted_case), 0.0), p) for p in peers)
        out.append(["all corrupted cases: agent beats every single tool",
                    f"acceptable {_pct(a_all)} vs best single tool {_pct(best_all[0])} "
                    f"({best_all[1]})", _verdict(a_all > best_all[0])])
    # 2. pure noise
    for label, content_pred in (("non-speech", lambda c: c["content"] != "speech"),
                                ("speech", lambda c: c["content"] == "speech")):
        def noise_pred(c: dict[str, Any], cp: Callable[[dict[str, Any]], bool] = content_pred
                       ) -> bool:
            return c["family"] == "noise" and cp(c)
        g = mean_gain(results, AGENT, noise_pred)
        if g is None:
            continue
        denoisers = [p for p in peers if p in PEER_DENOISERS
                     or p in ("wiener", "spectral_gating", "spectral_subtraction", "wavelet_denoise")]
        best = max(((_or(mean_gain(results, p, noise_pred), -99.0), p) for p in denoisers),
                   default=(-99.0, "-"))
        if label == "non-speech":
            ok = g >= best[0] - 1.0
            out.append(["pure noise, non-speech: within 1 dB of the best peer",
                        f"{_f(g)} dB vs {_f(best[0])} dB ({best[1]})", _verdict(ok)])
        else:
            d = mean_gain(results, "deepfilternet3", noise_pred)
            out.append(["pure noise, speech: where DeepFilterNet3 wins, by how much",
                        f"agent {_f(g)} dB, DeepFilterNet3 {_f(d)} dB, best {best[1]} {_f(best[0])} dB",
                        "reported"])
    # 3. agent vs oracle: cases made acceptable, over what doing nothing already has
    def corrupted(c: dict[str, Any]) -> bool:
        return c["family"] != "clean"
    a0, aa_, ao = (acceptance(results, s, corrupted) for s in ("none", AGENT, "oracle"))
    ga, go = mean_gain(results, AGENT, corrupted), mean_gain(results, "oracle", corrupted)
    if a0 is not None and aa_ is not None and ao is not None and ao > a0:
        share = (aa_ - a0) / (ao - a0)
        out.append(["agent ≥ 80 % of the oracle's improvement",
                    f"acceptable: none {_pct(a0)}, agent {_pct(aa_)}, oracle {_pct(ao)}: "
                    f"{100 * share:.0f} % of the oracle's improvement (mean SI-SDR gain "
                    f"{_f(ga)} vs {_f(go)} dB)", _verdict(share >= 0.8)])
    # 4. random below rules
    gr = mean_gain(results, "random", corrupted)
    ar, aa = acceptance(results, "random", corrupted), acceptance(results, AGENT, corrupted)
    if gr is not None and ga is not None:
        out.append(["`random` clearly below `rules`",
                    f"gain {_f(gr)} vs {_f(ga)} dB; acceptable {_pct(ar)} vs {_pct(aa)}",
                    _verdict(ga > gr + 1.0 and (aa or 0) > (ar or 0))])
    # 5. critic
    cr = results.get("critic") or {}
    for key, pooled, label in (
            ("within_case_alignment_si_sdr", "spearman_alignment_si_sdr",
             "critic: Spearman(alignment, SI-SDR) ≥ 0.7"),
            ("within_case_sync_offset", "spearman_sync_offset_all",
             "critic: Spearman(sync, −|offset|) ≥ 0.7")):
        v = cr.get(key)
        out.append([label, f"{_f(v, '{:.2f}')} within a case (mean over cases); "
                           f"{_f(cr.get(pooled), '{:.2f}')} pooled over all outputs",
                    _verdict(None if v is None else v >= 0.7)])
    return out


# -- plots -----------------------------------------------------------------------------------------
def plot_gain_heatmap(results: dict[str, Any], path: Path, systems: list[str], key: str = "gain_db"
                      ) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fams = [f for f in FAMILY_ORDER if any(c["family"] == f for c in results["cases"])]
    m = np.full((len(fams), len(systems)), np.nan)
    for i, f in enumerate(fams):
        for j, s in enumerate(systems):
            st = family_stats(results, s, f)
            v = st.get(key)
            if v is not None:
                m[i, j] = 100 * v if key == "acceptable" else max(-30, min(30, v))
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(systems), 0.9 + 0.45 * len(fams)))
    if key == "acceptable":
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        title = "share of cases acceptable against the clean truth (%)"
    else:
        im = ax.imshow(m, cmap="RdBu", vmin=-30, vmax=30, aspect="auto")
        title = "mean SI-SDR gain against the clean truth (dB, capped ±30)"
    for i in range(len(fams)):
        for j in range(len(systems)):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(systems)), systems, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(fams)), fams, fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_critic(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(c, r) for c in results["cases"] for r in c["systems"].values() if r.get("critic")]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for acc, colour in ((True, "tab:green"), (False, "tab:red")):
        pts = [(r["si_sdr_out"], r["critic"]["alignment"]) for _, r in rows
               if bool(r.get("acceptable")) == acc]
        if pts:
            a1.scatter(*zip(*pts, strict=False), s=10, c=colour, alpha=0.6,
                       label="acceptable" if acc else "not acceptable")
    a1.axhline(0.85, ls="--", c="grey", lw=0.8)
    a1.set_xlabel("SI-SDR of the output against the clean (dB)")
    a1.set_ylabel("alignment score")
    a1.set_xlim(-30, 60)
    a1.legend(fontsize=8)
    for kind, colour in (("event", "tab:blue"), ("video", "tab:orange")):
        pts = [(abs(r["offset_ms"]), r["critic"]["sync"]) for c, r in rows if c["video_kind"] == kind]
        if pts:
            a2.scatter(*zip(*pts, strict=False), s=10, c=colour, alpha=0.6, label=f"{kind} clips")
    a2.axhline(0.85, ls="--", c="grey", lw=0.8)
    a2.set_xlabel("|residual offset| against the clean (ms)")
    a2.set_ylabel("sync score")
    a2.legend(fontsize=8)
    fig.suptitle("the critic (embedded scorer) against the truth", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


def render_benchmarks(results: dict[str, Any], command: str, asset_dir: str) -> str:
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
           "middle and the end, and pitch.", "",
           "## Targets", "", *_table(["target", "measured", "verdict"], benchmark_targets(results)),
           "", f"![mean SI-SDR gain per family and system]({asset_dir}/gain.png)", "",
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
            cells = [_f(mean_gain(results, s, pred)) for s in show]
            if any(c != "–" for c in cells):
                rows.append([f"{k} ({content})", *cells])
    return ["Mean SI-SDR gain (dB) per noise kind and content (0, 5, 10 dB SNR averaged).", "",
            *_table(["noise", *show], rows)]


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
        *_table(["check", "value"], [
            [f"within a case: Spearman(alignment, SI-SDR), {cr['within_case_alignment_cases']} "
             "cases without timing faults", _f(cr["within_case_alignment_si_sdr"], "{:.2f}")],
            [f"within a case: Spearman(sync, −abs residual offset), {cr['within_case_sync_cases']} "
             "timing cases", _f(cr["within_case_sync_offset"], "{:.2f}")],
            ["pooled: Spearman(alignment, SI-SDR against the clean)", _f(cr["spearman_alignment_si_sdr"], "{:.2f}")],
            [f"pooled: Spearman(sync, −abs residual offset), event clips ({cr['n_event']})",
             _f(cr["spearman_sync_offset_event"], "{:.2f}")],
            ["pooled: Spearman(sync, −abs residual offset), all clips", _f(cr["spearman_sync_offset_all"], "{:.2f}")],
            ["outputs acceptable by the truth", str(cr["acceptable"])],
            ["outputs passing 0.85 on both scores", str(cr["passes"])],
            ["precision of 'passes' for 'acceptable'", _f(cr["precision"], "{:.2f}")],
            ["recall of 'passes' for 'acceptable'", _f(cr["recall"], "{:.2f}")],
        ]), "", f"![critic against the truth]({asset_dir}/critic.png)", ""]


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
    ctrl = _vals(rows_of(results, AGENT, fam("clean")), "control_si_sdr")
    t_rows = []
    ok_t: bool | None = None
    if noise is not None:
        t_rows.append(["mean SI-SDR gain on noise cases ≥ 6 dB", f"{_f(noise)} dB", _verdict(noise >= 6)])
    if offs:
        t_rows.append(["residual offset ≤ 40 ms on ≥ 90 % of offset cases",
                       f"{_pct(within)} of {len(offs)} (event clips: {_pct(within_ev)} of "
                       f"{len(offs_ev)})", _verdict((within or 0) >= 0.9)])
        t_rows.append(["no offset case left worse than it came in", f"{worse} worse",
                       _verdict(worse == 0)])
    if loud:
        t_rows.append(["loudness within ±1 LU (of the accepted window) on quiet cases",
                       f"{_pct(loud_ok)} of {len(loud)}", _verdict(loud_ok == 1.0)])
    if ctrl:
        t_rows.append(["clean controls: SI-SDR ≥ 30 dB against the input",
                       f"worst {min(ctrl):.1f} dB, {sum(1 for v in ctrl if v >= 30)}/{len(ctrl)} "
                       "at or above", _verdict(min(ctrl) >= 30)])
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
        fam_rows.append([f, _pct(a_r), _pct(a_x), _f(g_r), _f(g_x), "yes" if ok else "**no**"])
    if beats:
        ok_t = all(beats)
        t_rows.append(["`rules` beats `random` on every family",
                       f"{sum(beats)}/{len(beats)} families", _verdict(ok_t)])
    if speed:
        t_rows.append(["full repair of a 10 s 720p clip ≤ 1.5× decoding its audio and frames",
                       f"{speed['ratio']:.2f}× ({speed['repair_s']:.2f} s vs {speed['decode_s']:.2f} s)",
                       _verdict(speed["ratio"] <= 1.5)])
        t_rows.append(["≥ 5× real time on one core", f"{speed['rtf']:.1f}×", _verdict(speed["rtf"] >= 5)])
    out = ["# The agent on corrupted clips", "", *_meta_lines(results, command), "",
           "The loop of the README (perceive → plan → act → reflect, 3 rounds, threshold 0.85) "
           "with the embedded backends, on the suite of `docs/benchmarks.md`: real clips with "
           "their picture, corrupted in known ways, measured against the clean original.", "",
           "## Targets", "", *_table(["target", "measured", "verdict"], t_rows), ""]
    if fam_rows:
        out += ["## `rules` against `random` (the paper's baseline)", "",
                *_table(["family", "acceptable, rules", "acceptable, random", "gain rules, dB",
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
            cells += [_f(st.get("precision"), "{:.2f}"), _f(st.get("recall"), "{:.2f}"),
                      _f(st.get("rounds"), "{:.1f}")]
        if cells:
            rows.append([f, *cells])
    return _table(["family", "precision random", "recall random", "rounds random",
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
        doc.write_text(render_benchmarks(results, command, rel) + "\n")
        written.append(doc)
    if agent_doc is not None:
        agent_doc.parent.mkdir(parents=True, exist_ok=True)
        agent_doc.write_text(render_agent(results, command, speed) + "\n")
        written.append(agent_doc)
    return written


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target.resolve(), start.resolve())
