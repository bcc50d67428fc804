"""Benchmark report: the plots (gain and acceptability heat maps, the critic against the truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avagent.bench.report_stats import FAMILY_ORDER, family_stats


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

