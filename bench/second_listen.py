"""Which copy perception should tag a second time to hear a music bed under noise.

``python -m avagent.bench.second_listen`` (about 2 minutes on 2 cores): the full suite's
speech-in-noise cases (speech alone: any music heard there is a false alarm) and excerpts of a
real explainer's narration over music under planted noise, kept where the tags of the noisy
input hear speech and no music (the cases the second listen is asked on). For each candidate
copy, the share of its patches with music or singing. See docs/actions.md.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from avagent.actions import apply_action
from avagent.bench import corrupt, media, suite
from avagent.perception import tags
from avagent.perception.spectrum import to_16k, to_mono

CLEANERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("wiener", {}), ("spectral_gating", {"stationary": True}), ("spectral_subtraction", {}))
EXCERPTS_S = (6.0, 12.0, 18.0, 60.0, 90.0, 108.0, 114.0)
NOISES = (("white", 5.0), ("rain", 10.0), ("pink", 10.0), ("white", 10.0), ("hiss", 0.0),
          ("pink", 0.0))


def listen(y: np.ndarray, sr: int) -> list[float]:
    """Music share of each cleaner's copy of ``y`` (16 kHz mono, as perception tags it)."""
    y16 = to_16k(to_mono(np.asarray(y, np.float32)), sr)
    return [float(tags.music_share(tags.tag_audio(
        np.asarray(apply_action(name, y16, sr=16000, **params)), sr=16000)) or 0.0)
        for name, params in CLEANERS]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    from avagent.service.media import load_audio

    speech = np.array([listen(c.y, c.sr) for c in suite.build_cases("full")
                       if c.source.content == "speech" and c.source.kind == "event"
                       and "noise" in c.id])
    y, sr = load_audio(media.fetch("explainer") / "wannaworktogether.mp4")
    y = np.asarray(y, np.float64)
    bed = []
    for t0 in EXCERPTS_S:
        clip = y[:, round(t0 * sr): round((t0 + 6.0) * sr)]
        for kind, snr in NOISES:
            noisy, _ = corrupt.corrupt("noise", clip, sr=sr, seed=2, kind=kind, snr_db=snr)
            t = tags.tag_audio(noisy, sr=sr)
            if ((tags.music_share(t) or 0.0) >= tags.MUSIC_SHARE / 3
                    or t.share("speech") < tags.MUSIC_SHARE):
                continue  # not a case the second listen is asked on
            row = listen(noisy, sr)
            bed.append(row)
            print(f"explainer {t0:5.0f} s {kind:6s} {snr:4.0f} dB  "
                  + "  ".join(f"{n} {v:.2f}" for (n, _), v in zip(CLEANERS, row, strict=True)))
    bed_a = np.array(bed)
    print("| second listen through | speech alone: cases with any music | narration over music:"
          " cases with music >= 0.1 |")
    print("|---|---|---|")
    for k, (name, _) in enumerate(CLEANERS):
        print(f"| {name} | {int((speech[:, k] > 0).sum())} of {len(speech)} | "
              f"{int((bed_a[:, k] >= tags.MUSIC_SHARE / 3).sum())} of {len(bed_a)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
