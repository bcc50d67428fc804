"""Acceptance protocol for the audio-visual sync estimator (``python -m avagent.bench.sync_check``).

Every benchmark source with a picture gets every planted offset in :data:`DELAYS_MS`, a clock
drift (rate 1.002) and a PAL speed-up, and :func:`avagent.perception.sync.estimate_sync` is
scored against the truth:

* **decided**: verdict ``offset`` or ``in_sync`` with a delay;
* **correct**: decided with ``|estimate - truth| <= 40 ms``;
* **confidently wrong**: decided with ``|error| > 80 ms`` and ``confidence >= 0.3`` (the rule
  planner acts at confidence 0.3 and shifts |delay| >= 40 ms, see ``avagent.agent.planner``).

For drift the truth delay is the mean offset over the clip (the sound runs ahead by
``(1 - 1/rate)`` of the elapsed time: -8 ms on 8 s at 1.002); for PAL the right answer is the
``drift`` verdict with the PAL rate (found from the stream durations), never an offset.

Event sources (a picture that jumps at sound onsets) should be decided; real videos (no clear
audio-visual events) should stay ``cannot_tell`` or be right. The bar is zero confidently wrong
cases over the whole protocol.

A second, harder null check (``--cross``, on by default): the sound of each source under the
picture of every other source, cut to the shorter of the two, at every planted offset. There is
no true offset there, so any decision with confidence >= 0.3 is confidently wrong.

The activity cue (:mod:`avagent.perception.activity`, picture change against the sound's onset
strength) is also asked on its own in every case, whatever the other cues say, and reported
beside the verdicts: offsets it decides and gets right, equal-length drifts it would leave
≤ 45 ms, decisions off by more than ``WRONG_MS`` (any decision on PAL or an unrelated pair), and
its largest z, against the gate ``activity.Z_PEAK``. Its wrong decisions fail the run too.
``--real-null`` adds a null from other real recordings (Lugaru's ambiences and music) under
every picture; ``--suite-offsets`` runs the benchmark's offset cases instead (none, rules,
oracle through ``bench.run.run_case``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from avagent.bench import corrupt, suite
from avagent.perception.activity import Z_PEAK, activity_sync
from avagent.perception.frames import FrameSet
from avagent.perception.sync import estimate_sync

DELAYS_MS = (-800.0, -450.0, -300.0, -120.0, 0.0, 120.0, 300.0, 450.0, 800.0)
DRIFT_RATE = 1.002
# drift with equal stream durations (the sound cut or padded to the picture's length, so the
# durations cannot tell): only the content can find these
EQUAL_DRIFTS = (1.01, 1.03, 1.043, 0.97)
CORRECT_MS = 40.0
WRONG_MS = 80.0
ACT_CONFIDENCE = 0.3  # agent.planner.SYNC_MIN_CONFIDENCE


def flash_source(seed: int, hue_only: bool) -> suite.Source:
    """Ten 1 kHz tone bursts 0.6-1.4 s apart in white noise 10 dB down, the left half of the
    picture flashing for two frames at each (issue 12's case); ``hue_only``: the flash changes
    hue at the same luminance, visible in the colour frames only."""
    from avagent.bench.flash import flash_av

    y, sr, frames, _ = flash_av(0.0, snr_db=10.0, hue_only=hue_only, seed=seed)
    name = f"flash:{'hue' if hue_only else 'white'}{seed}"
    return suite.Source(name, "event", "ambience", y[None, :], sr, frames)


def protocol_sources() -> list[suite.Source]:
    return [
        flash_source(0, True),
        flash_source(1, False),
        suite.percussion_source(0),
        suite.percussion_source(1),
        suite.event_source("music", "tabla"),
        suite.event_source("speech", "0"),
        suite.event_source("speech", "3"),
        suite.event_source("music", "guitar"),
        suite.video_source("mp4.mp4"),
        suite.video_source("bigbuckbunny.mp4", "bunny", "ambience"),
        # a real talking head (KPhotoAlbum's demo movie): a man speaking to a webcam, 4.5 s at
        # 15 fps; its own sound has webcam hiss (13 dB SNR): a truth for timing, not a clean
        # control
        suite.video_source("movie.avi", "webcam", "speech"),
        # narration over a music bed (an animated explainer) and a second real talking head (a
        # webcam inset over a screencast, its sound with hum and typing)
        suite.video_source("wannaworktogether.mp4", "explainer", "music", start_s=12.0,
                           duration_s=6.0),
        suite.video_source("movie-hello.mp4", "screencast", "speech"),
    ]


@dataclass
class Row:
    source: str
    kind: str
    case: str
    truth_ms: float | None
    verdict: str
    delay_ms: float | None
    confidence: float
    rate: float | None
    decided: bool
    correct: bool
    wrong: bool  # confidently wrong
    # the activity cue (perception/activity.py) asked on its own, whatever the others say
    act_delay_ms: float | None = None
    act_z: float = 0.0
    act_correct: bool = False
    act_wrong: bool = False  # decided and off by more than WRONG_MS (or left more than came)


def _activity(y: np.ndarray, sr: int, frames: FrameSet,
              truth_ms: float | None) -> tuple[float | None, float, bool, bool]:
    """The activity cue alone: (delay, z, correct, wrong) against an offset's truth (None:
    no true offset, e.g. an unrelated pair or PAL, where any decision is wrong)."""
    a = activity_sync(y, sr, frames)
    if a.delay_ms is None:
        return None, a.z, False, False
    err = abs(a.delay_ms - truth_ms) if truth_ms is not None else None
    return a.delay_ms, a.z, err is not None and err <= CORRECT_MS, err is None or err > WRONG_MS


def _score(src: suite.Source, case: str, truth_ms: float | None, y: np.ndarray) -> Row:
    s = estimate_sync(y, sr=src.sr, frames=src.frames, audio_duration_s=y.shape[-1] / src.sr)
    decided = s.verdict in ("offset", "in_sync") and s.audio_delay_ms is not None
    err = abs(s.audio_delay_ms - truth_ms) if decided and truth_ms is not None else None
    # PAL: any offset/in_sync verdict is wrong (the clip drifts by 4 % of its length)
    wrong = decided and s.confidence >= ACT_CONFIDENCE and (err is None or err > WRONG_MS)
    return Row(
        src.name,
        src.kind,
        case,
        truth_ms,
        s.verdict,
        s.audio_delay_ms,
        s.confidence,
        s.rate,
        decided,
        err is not None and err <= CORRECT_MS,
        wrong,
        *_activity(y, src.sr, src.frames, truth_ms),
    )


def run_source(src: suite.Source) -> list[Row]:
    rows = []
    for d in DELAYS_MS:
        y, truth = corrupt.offset(src.y, sr=src.sr, audio_delay_ms=d)
        rows.append(_score(src, f"offset{d:+g}", truth.params["audio_delay_ms"], y))
    y, _ = corrupt.corrupt("drift", src.y, sr=src.sr, rate=DRIFT_RATE)
    mean_ms = -(1 - 1 / DRIFT_RATE) * 1000 * src.duration_s / 2
    rows.append(_score(src, "drift1.002", mean_ms, y))
    y, _ = corrupt.corrupt("pal", src.y, sr=src.sr)
    rows.append(_score(src, "pal", None, y))
    for rate in EQUAL_DRIFTS:
        y, _ = corrupt.corrupt("drift", src.y, sr=src.sr, rate=rate, equal_length=True)
        rows.append(_score_drift(src, rate, y))
    return rows


def _score_drift(src: suite.Source, rate: float, y: np.ndarray) -> Row:
    """A clock drift: scored by the largest offset left along the clip after the repair the
    planner would make (speed by 1/rate, then shift by -delay; an offset verdict: the shift
    alone; cannot tell: nothing). Correct: ≤ 45 ms left; confidently wrong: acted on and more
    than 45 ms left, or more than came in."""
    s = estimate_sync(y, sr=src.sr, frames=src.frames, audio_duration_s=y.shape[-1] / src.sr)
    t = np.linspace(0.0, src.duration_s, 50)
    came = np.abs(t * (1.0 / rate - 1.0)) * 1000.0  # delay along the clip, ms
    acted = (s.verdict == "drift" and s.rate is not None) or (
        s.verdict == "offset" and s.confidence >= ACT_CONFIDENCE)
    if s.verdict == "drift" and s.rate:
        # speed 1/r_est puts video time t (audio t / rate) at t * r_est / rate; the planner
        # also shifts by -delay when |delay| >= 40 ms at confidence >= 0.3
        d0 = s.audio_delay_ms if s.audio_delay_ms is not None else 0.0
        d0 = d0 if abs(d0) >= 40.0 and s.confidence >= ACT_CONFIDENCE else 0.0
        left = np.abs(t * (s.rate / rate - 1.0) * 1000.0 - d0)
    elif s.audio_delay_ms is not None and s.verdict == "offset":
        left = np.abs(t * (1.0 / rate - 1.0) * 1000.0 - s.audio_delay_ms)
    else:
        left = came
        acted = False
    worst = float(left.max())
    wrong = acted and (worst > 45.0 or worst > float(came.max()) + 1.0)
    # the activity cue alone, acted on as an offset
    a = activity_sync(y, src.sr, src.frames)
    a_left = (float(np.abs(t * (1.0 / rate - 1.0) * 1000.0 - a.delay_ms).max())
              if a.delay_ms is not None else float(came.max()))
    a_wrong = a.delay_ms is not None and (a_left > 45.0 or a_left > float(came.max()) + 1.0)
    return Row(src.name, src.kind, f"drift{rate:g}=", float(came.max()), s.verdict,
               s.audio_delay_ms, s.confidence, s.rate, acted, worst <= 45.0, wrong,
               a.delay_ms, a.z, a.delay_ms is not None and a_left <= 45.0, a_wrong)


def _cut(frames: FrameSet, dur_s: float) -> FrameSet:
    keep = frames.times_s < dur_s
    return FrameSet(
        frames.frames[keep],
        frames.times_s[keep],
        frames.sample_fps,
        frames.fps,
        frames.width,
        frames.height,
        min(dur_s, frames.duration_s),
    )


def run_cross(srcs: list[suite.Source]) -> list[Row]:
    """Sound of one source, picture of another: every decision that may be acted on is wrong."""
    rows = []
    for sa in srcs:
        for sv in srcs:
            if sa is sv:
                continue
            dur = min(sa.duration_s, sv.frames.duration_s)
            frames = _cut(sv.frames, dur)
            y0 = sa.y[:, : round(dur * sa.sr)]
            for d in DELAYS_MS:
                y, _ = corrupt.offset(y0, sr=sa.sr, audio_delay_ms=d)
                s = estimate_sync(y, sr=sa.sr, frames=frames, audio_duration_s=dur)
                decided = s.verdict in ("offset", "in_sync") and s.audio_delay_ms is not None
                rows.append(
                    Row(
                        f"{sa.name} | {sv.name}",
                        "cross",
                        f"offset{d:+g}",
                        None,
                        s.verdict,
                        s.audio_delay_ms,
                        s.confidence,
                        s.rate,
                        decided,
                        False,
                        decided and s.confidence >= ACT_CONFIDENCE,
                        *_activity(y, sa.sr, frames, None),
                    )
                )
    return rows


REAL_SOUNDS = ("Wind.ogg", "DesertAmbient.ogg", "Fire.ogg", "Music2.ogg", "Music3.ogg")


def run_real_null(srcs: list[suite.Source], starts_s: tuple[float, ...] = (5.0, 30.0)
                  ) -> list[Row]:
    """A null from other real recordings (Lugaru's wind, desert, fire and two music tracks, two
    stretches of each) under every protocol picture at every planted offset: no true offset,
    so any decision acted on (verdict or activity cue) is wrong."""
    from avagent.bench import signals

    rows = []
    for fn in REAL_SOUNDS:
        full = signals.load("lugaru", fn)
        for start in starts_s:
            for sv in srcs:
                n = round(sv.frames.duration_s * signals.SR)
                y0 = full[:, round(start * signals.SR):][:, :n]
                if y0.shape[-1] < 0.99 * n:
                    continue
                for d in DELAYS_MS:
                    y, _ = corrupt.offset(y0, sr=signals.SR, audio_delay_ms=d)
                    s = estimate_sync(y, sr=signals.SR, frames=sv.frames)
                    decided = s.verdict in ("offset", "in_sync") and s.audio_delay_ms is not None
                    rows.append(Row(f"lugaru:{fn}@{start:g}s | {sv.name}", "cross", f"offset{d:+g}",
                                    None, s.verdict, s.audio_delay_ms, s.confidence, s.rate,
                                    decided, False, decided and s.confidence >= ACT_CONFIDENCE,
                                    *_activity(y, signals.SR, sv.frames, None)))
    return rows


def cross_table(rows: list[Row], what: str = "unrelated sound/picture pairs") -> str:
    dec = [r for r in rows if r.decided]
    out = [
        f"{what}: {len(rows)} cases, decided {len(dec)}, "
        f"confidently wrong {sum(r.wrong for r in rows)}; the activity cue alone decided "
        f"{sum(r.act_delay_ms is not None for r in rows)} (largest z "
        f"{max((r.act_z for r in rows), default=0.0):.2f}, gate {Z_PEAK})"
    ]
    out += [
        f"  {r.source} {r.case}: {r.verdict} {r.delay_ms:+.0f} ms c{r.confidence:.2f}" for r in dec
    ]
    return "\n".join(out)


def table(rows: list[Row]) -> str:
    names = list(dict.fromkeys(r.source for r in rows))
    out = [
        "| source | offsets decided | offsets correct | drift | PAL | equal-length drift ≤ 45 ms "
        "| confidently wrong | activity cue alone: offsets decided / correct / wrong (largest z) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        rs = [r for r in rows if r.source == name]
        off = [r for r in rs if r.case.startswith("offset")]
        dr = next(r for r in rs if r.case.startswith("drift") and not r.case.endswith("="))
        eq = [r for r in rs if r.case.endswith("=")]
        pal = next(r for r in rs if r.case == "pal")
        out.append(
            f"| {name} | {sum(r.decided for r in off)}/{len(off)} "
            f"| {sum(r.correct for r in off)}/{len(off)} "
            f"| {_brief(dr)} | {_brief(pal)} | {sum(r.correct for r in eq)}/{len(eq)} "
            f"| {sum(r.wrong for r in rs)} "
            f"| {sum(r.act_delay_ms is not None for r in off)} / {sum(r.act_correct for r in off)}"
            f" / {sum(r.act_wrong for r in rs)} ({max(r.act_z for r in off):.1f}) |"
        )
    ev = [r for r in rows if r.kind == "event" and r.case.startswith("offset")]
    eq = [r for r in rows if r.case.endswith("=")]
    off = [r for r in rows if r.case.startswith("offset")]
    out.append(
        f"\noffsets correct: {sum(r.correct for r in off)}/{len(off)}; "
        f"equal-length drifts left ≤ 45 ms: {sum(r.correct for r in eq)}/{len(eq)}; "
        f"event-source offsets correct: {sum(r.correct for r in ev)}/{len(ev)}; "
        f"confidently wrong over the whole protocol: {sum(r.wrong for r in rows)}"
        f"\nactivity cue alone: offsets decided {sum(r.act_delay_ms is not None for r in off)}, "
        f"correct {sum(r.act_correct for r in off)}; equal-length drifts decided "
        f"{sum(r.act_delay_ms is not None for r in eq)}, left ≤ 45 ms {sum(r.act_correct for r in eq)}; "
        f"wrong (off by > {WRONG_MS:g} ms, PAL included) {sum(r.act_wrong for r in rows)}"
    )
    return "\n".join(out)


def _brief(r: Row) -> str:
    if r.verdict == "drift":
        return f"drift {r.rate}" + (f" @{r.delay_ms:+.0f}ms" if r.delay_ms is not None else "")
    if r.delay_ms is None:
        return r.verdict
    return f"{r.verdict} {r.delay_ms:+.0f}ms c{r.confidence:.2f}"


def detail(rows: list[Row]) -> str:
    out = []
    for r in rows:
        flag = "WRONG" if r.wrong else ("ok" if r.correct else "")
        d = "-" if r.delay_ms is None else f"{r.delay_ms:+.1f}"
        t = "-" if r.truth_ms is None else f"{r.truth_ms:+.1f}"
        out.append(
            f"{r.source:24s} {r.case:14s} truth {t:>7s} {r.verdict:11s} {d:>7s} "
            f"c{r.confidence:.2f} {flag}"
        )
    return "\n".join(out)


def suite_offsets(systems: tuple[str, ...] = ("none", "rules", "oracle")) -> str:
    """The benchmark's view: every case of the full suite (seed 0) whose faults include an
    offset, through :func:`avagent.bench.run.run_case` without the critic; how many each system
    leaves acceptable, on the offset family and on all of them (mixtures included), and how
    many the activity cue decides on its own."""
    from avagent.bench.run import _cases, run_case

    cases = _cases("full", 0)
    idx = [i for i, c in enumerate(cases) if "offset" in suite.fault_families(c)]
    ok = {"offset": dict.fromkeys(systems, 0), "all": dict.fromkeys(systems, 0)}
    n_off = act = 0
    for i in idx:
        c = cases[i]
        entry = run_case("full", 0, i, systems, False)
        act += activity_sync(c.y, c.sr, c.source.frames).delay_ms is not None
        n_off += c.family == "offset"
        for name, row in entry["systems"].items():
            ok["all"][name] += bool(row["acceptable"])
            ok["offset"][name] += bool(row["acceptable"]) and c.family == "offset"
    def fmt(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items())

    return (f"full suite, offset family: {n_off} cases, acceptable: {fmt(ok['offset'])}\n"
            f"all {len(idx)} cases with an offset: acceptable: {fmt(ok['all'])}; "
            f"the activity cue alone decides {act}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--only", help="sources whose name contains this")
    p.add_argument("--no-cross", action="store_true", help="skip the unrelated-pairs check")
    p.add_argument("--real-null", action="store_true",
                   help="also: other real recordings (Lugaru) under every picture")
    p.add_argument("--suite-offsets", action="store_true",
                   help="instead: the full suite's offset cases through run_case (none, rules, "
                        "oracle)")
    args = p.parse_args(argv)
    if args.suite_offsets:
        print(suite_offsets())
        return 0
    t0 = time.perf_counter()
    rows: list[Row] = []
    srcs = [s for s in protocol_sources() if not args.only or args.only in s.name]
    for src in srcs:
        rows += run_source(src)
    if args.verbose:
        print(detail(rows))
    print(table(rows))
    if not args.no_cross:
        cross = run_cross(srcs)
        print()
        print(cross_table(cross))
        rows += cross
    if args.real_null:
        real = run_real_null(srcs)
        print()
        print(cross_table(real, "real recordings under the pictures"))
        rows += real
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)
    return 1 if any(r.wrong or r.act_wrong for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
