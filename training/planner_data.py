"""Planner SFT data: clean clips + known faults → (the planner's prompt, the correct plan).

Each example is one planning call, written as chat messages by the SAME builder the LLM planner
sends (:func:`avagent.agent.prompts.planner_messages`), with :func:`~avagent.agent.prompts.
plan_answer` of the correct plan as the assistant's target. The correct plan comes from the fault
generator's truth (:meth:`avagent.bench.corrupt.Truth.plan`), kept to what perception could see:
a step whose fault was not measured (a shift when sync "cannot tell", a denoiser when no noise was
measured) is left out, because the planner's guard would refuse it and no prompt could justify it.
Every step carries its reasoning (why this action, why these parameters, from the measured facts).

Reflection examples: a weak first plan (a step missing, the wrong denoiser, a wrong parameter, an
unneeded step) is applied to the corrupted audio and scored by the embedded scorer; the prompt
then holds that round (plan, scores, feedback) and the target is the correct plan.

Splits are by SOURCE clip (a seeded permutation of the sources): every corruption of one clip is
in one split. None of the benchmark's sources (:func:`avagent.bench.suite.sources`) is used.
Perception is the cost; it runs in a process pool and its seconds are recorded per case.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avagent.errors import ParameterError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
_DENOISERS = ("wiener", "spectral_gating", "spectral_subtraction", "wavelet_denoise")
# Real music for extra sources (Sonic Pi's CC0 samples; none is a benchmark source).
MUSIC_FILES = (
    "loop_amen.flac", "loop_breakbeat.flac", "loop_compus.flac", "loop_electric.flac",
    "loop_industrial.flac", "loop_mehackit1.flac", "loop_mehackit2.flac", "loop_mika.flac",
    "loop_perc1.flac", "loop_perc2.flac", "loop_safari.flac", "loop_weirdo.flac",
    "guit_e_fifths.flac", "guit_e_slide.flac", "guit_harmonics.flac", "ambi_piano.flac",
)


@dataclass
class DataConfig:
    """What ``avagent train planner-data`` builds (flat; each default commented)."""

    out: str = "runs/planner-data"  # folder for records.jsonl, {train,validation,test}.jsonl
    seed: int = 0  # everything random is drawn from it
    speech_sources: int = 16  # real speech clips (ALSA phrases, seeds 100+)
    drum_sources: int = 10  # real drum hits at seeded times (seeds 100+)
    music_sources: int = 10  # real music loops from MUSIC_FILES
    cases_per_source: int = 12  # corruptions drawn per clip (bench.corrupt.sample)
    duration_s: float = 5.0  # clip length; perception cost grows with it
    reflect_fraction: float = 0.4  # share of cases that also give a reflection example
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)  # by source clip
    workers: int = 2  # perception processes
    # DNSMOS is 85 % of perception's cost (~4 s of ~5 s per case here); the live planner sees it
    # on speech, so this share of cases runs it and the model sees prompts with and without it.
    speech_quality_fraction: float = 0.2

    @classmethod
    def tiny(cls, out: str) -> DataConfig:
        """A few seconds of work for tests."""
        return cls(out=out, speech_sources=2, drum_sources=1, music_sources=1,
                   cases_per_source=2, duration_s=2.5, reflect_fraction=0.5, workers=1,
                   speech_quality_fraction=0.0)


# -- sources ----------------------------------------------------------------------------------------
def source_names(cfg: DataConfig) -> list[str]:
    names = [f"speech:{100 + i}" for i in range(cfg.speech_sources)]
    names += [f"drums:{100 + i}" for i in range(cfg.drum_sources)]
    if cfg.music_sources > len(MUSIC_FILES):
        raise ParameterError(f"music_sources={cfg.music_sources} must be at most {len(MUSIC_FILES)}")
    names += [f"music:{MUSIC_FILES[i]}" for i in range(cfg.music_sources)]
    return names


def assign_splits(names: list[str], seed: int,
                  fractions: tuple[float, float, float]) -> dict[str, str]:
    """Source name → split, from a seeded permutation; each split gets at least one source when
    there are three or more."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ParameterError(f"split={fractions} must be three fractions summing to 1")
    order = list(np.random.default_rng(seed).permutation(sorted(names)))
    n = len(order)
    n_val = round(n * fractions[1])
    n_test = round(n * fractions[2])
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    n_train = n - n_val - n_test
    out = {}
    for i, name in enumerate(order):
        out[str(name)] = "train" if i < n_train else "validation" if i < n_train + n_val else "test"
    return out


@functools.lru_cache(maxsize=4)
def load_source(name: str, duration_s: float) -> Any:
    """Build a clean source (a :class:`avagent.bench.suite.Source`) by name."""
    from avagent.bench import signals, suite

    kind, _, key = name.partition(":")
    if kind == "speech":
        return suite.event_source("speech", key, duration_s)
    if kind == "drums":
        return suite.percussion_source(int(key), duration_s)
    if kind == "music":
        import pyloudnorm

        y = np.atleast_2d(signals.load("sonicpi", key))
        y = np.repeat(y, 2, axis=0) if y.shape[0] == 1 else y[:2]
        n = round(duration_s * signals.SR)
        y = np.tile(y, (1, -(-n // y.shape[-1])))[:, :n]
        y = y * 10 ** ((-23.0 - pyloudnorm.Meter(signals.SR).integrated_loudness(y.T)) / 20)
        y = y + signals.noise("pink", n, channels=2, seed=len(key)) * 10 ** (-70 / 20)
        frames = suite.render_picture(y, signals.SR, seed=sum(map(ord, key)))
        return suite.Source(f"event:{key}", "event", "music", y, signals.SR, frames)
    raise ParameterError(f"source={name!r}; valid kinds: speech, drums, music")


# -- the correct plan -------------------------------------------------------------------------------
def _round_params(action: str, params: dict[str, Any]) -> dict[str, Any]:
    # Short numbers: the model copies them token by token.
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, float):
            v = round(v, 6 if k == "rate" else 3 if k == "target_duration_s" else 1)
        out[k] = v
    return out


def _reason(action: str, params: dict[str, Any], facts: Any) -> str:
    """Why this action and why these parameters, from what perception measured."""
    a, s = facts.audio, facts.sync
    if action == "fill_blanks":
        d = a.dropouts
        return (f"{len(d)} dropout(s) measured inside the sound (first at {d[0].start_s:.2f} s): "
                "fill them from the surrounding audio; the action locates the gaps itself")
    if action == "remove_hum":
        return (f"tonal hum measured at {a.hum_hz:.1f} Hz ({a.hum_db or 0:.0f} dB above the floor): "
                f"notch the {params['fundamental_hz']:g} Hz mains fundamental and its harmonics")
    if action in _DENOISERS:
        why = {"wiener": "a Wiener filter suits steady broadband noise",
               "spectral_gating": "non-stationary gating follows fluctuating noise (wind, "
               "ambience, crackle)"}.get(action, action.replace("_", " "))
        return f"{a.noise_kind.value} noise measured at about {a.snr_db:.0f} dB SNR: {why}"
    if action == "speed":
        parts = []
        if "rate" in params and s is not None and s.rate:
            parts.append(f"audio runs {100 * (s.rate - 1):+.2f}% fast (measured rate "
                         f"{s.rate:.4f}): rate={params['rate']} (1/rate) restores duration and pitch")
        if "offset_ms" in params:
            d = s.audio_delay_ms if s is not None and s.audio_delay_ms is not None else None
            seen = f"measured {d:+.0f} ms, confidence {s.confidence:.2f}" if d is not None else \
                "measured as a timing fault"
            late = params["offset_ms"] < 0
            parts.append(f"sound is {'late' if late else 'early'} ({seen}): offset_ms="
                         f"{params['offset_ms']} moves it {'earlier' if late else 'later'}")
        if "target_duration_s" in params:
            parts.append(f"target_duration_s={params['target_duration_s']} matches the picture")
        return "; ".join(parts) or "timing fault measured"
    if action == "volume":
        loud = a.loudness_lufs if a.loudness_lufs is not None else float("nan")
        state = "clipped (overdriven)" if a.clipping_fraction > 1e-4 else (
            "too quiet" if loud < -33 else "off its programme level")
        return (f"loudness {loud:.1f} LUFS, {state}: bring it to {params.get('target_lufs')} LUFS "
                "under a -1 dBTP ceiling")
    return action.replace("_", " ")


def observable_plan(truth: Any, facts: Any) -> tuple[Any, list[str]]:
    """The truth's repair kept to what perception measured, each step with its reasoning.

    Returns the :class:`~avagent.agent.state.Plan` and notes on the steps left out (and why).
    """
    from avagent.agent.planner import validate_plan
    from avagent.agent.state import Plan, Step
    from avagent.perception.facts import NoiseKind

    a, s = facts.audio, facts.sync
    verdict = s.verdict if s is not None else "no picture"
    steps, notes = [], []
    for action, params in truth.plan():
        params = _round_params(action, params)
        if action in ("speed", "pitch") and verdict not in ("offset", "drift"):
            notes.append(f"{action} left out: sync measured as {verdict!r}")
            continue
        if action in _DENOISERS and a.noise_kind is NoiseKind.NONE:
            notes.append(f"{action} left out: no noise measured (snr {a.snr_db:.0f} dB)")
            continue
        if action == "remove_hum" and a.hum_hz is None:
            notes.append("remove_hum left out: no hum measured")
            continue
        if action == "fill_blanks" and not a.dropouts:
            notes.append("fill_blanks left out: no dropout measured")
            continue
        steps.append(Step(action=action, params=params, reasoning=_reason(action, params, facts)))
    plan = validate_plan(Plan(steps=steps, planner="truth", notes=notes))
    return plan, notes


# -- weak first plans (reflection turns) ------------------------------------------------------------
def weak_plan(target: Any, facts: Any, rng: np.random.Generator) -> tuple[str, Any]:
    """A plausible but worse first plan: (kind, Plan). Never equal to ``target``."""
    from avagent.agent.planner import validate_plan
    from avagent.agent.state import Plan, Step

    steps = [s.model_copy(deep=True) for s in target.steps]
    options: list[str] = ["extra"]
    if steps:
        options += ["missing", "empty"]
    if any(s.action in _DENOISERS for s in steps):
        options.append("wrong_denoiser")
    if any(s.action in ("volume", "speed", "remove_hum") for s in steps):
        options += ["wrong_param", "wrong_param"]
    kind = str(rng.choice(options))
    if kind == "missing":
        steps.pop(int(rng.integers(len(steps))))
    elif kind == "empty":
        steps = []
    elif kind == "wrong_denoiser":
        for st in steps:
            if st.action in _DENOISERS:
                other = [d for d in _DENOISERS if d != st.action]
                st.action, st.params = str(rng.choice(other)), {}
                st.reasoning = f"try {st.action.replace('_', ' ')} on the measured noise"
    elif kind == "wrong_param":
        st = next(s for s in steps if s.action in ("volume", "speed", "remove_hum"))
        p = st.params
        if st.action == "volume":
            p["target_lufs"] = round(float(p.get("target_lufs", -23.0))
                                     + float(rng.choice([-1, 1]) * rng.uniform(6, 12)), 1)
        elif st.action == "remove_hum":
            p["fundamental_hz"] = 60.0 if p["fundamental_hz"] == 50.0 else 50.0
        elif "offset_ms" in p:
            p["offset_ms"] = round(-p["offset_ms"] * float(rng.uniform(0.5, 1.0)), 1)
        else:
            p["rate"] = round(2.0 - p["rate"], 6)  # the wrong direction
        st.reasoning = "first guess at the " + st.action.replace("_", " ") + " parameters"
    else:  # extra: an unneeded denoiser or level change
        if facts.audio.loudness_lufs is not None and rng.random() < 0.5:
            steps.append(Step(action="volume", params={"target_lufs": -14.0},
                              reasoning="make it louder"))
        else:
            steps.insert(0, Step(action="wavelet_denoise", params={},
                                 reasoning="clean up any background noise"))
    plan = validate_plan(Plan(steps=steps, planner="weak"))
    same = [(s.action, s.params) for s in plan.steps] == [(s.action, s.params) for s in target.steps]
    if same:  # e.g. a volume step clamped back: fall back to the empty plan or an extra step
        plan = validate_plan(Plan(steps=[] if target.steps else [Step(
            action="wavelet_denoise", params={}, reasoning="clean up any background noise")],
            planner="weak"))
        kind = "empty" if target.steps else "extra"
    return kind, plan


# -- one case ---------------------------------------------------------------------------------------
def captions_for(facts: Any, *, y: Any, sr: int, frames: Any) -> dict[str, str]:
    """The captions the agent graph's perceive node gives the planner: the default (embedded)
    captioners of :class:`avagent.agent.state.AgentContext`."""
    from avagent.agent.captions import Captioners

    return Captioners().describe(facts, y=y, sr=sr, frames=frames)


def _case_seed(seed: int, source: str, k: int) -> int:
    h = hashlib.sha256(f"{seed}:{source}:{k}".encode()).hexdigest()
    return int(h[:8], 16)


def make_case(source: str, k: int, seed: int, duration_s: float, reflect: bool,
              speech_quality: bool = True) -> list[dict[str, Any]]:
    """Corrupt ``source`` (case ``k``), perceive, and return its record(s): the first-round
    example and, when ``reflect``, the reflection example."""
    from avagent.actions import apply_action
    from avagent.agent.graph import MIN_GAIN, TIMING_ACTIONS, round_feedback
    from avagent.agent.perceive import perceive
    from avagent.agent.state import Round
    from avagent.bench import corrupt
    from avagent.errors import AvagentError
    from avagent.reflection.scorers import ACCEPT, EmbeddedScorer

    src = load_source(source, duration_s)
    cseed = _case_seed(seed, source, k)
    y, truth = corrupt.sample(src.y, sr=src.sr, seed=cseed)
    t0 = time.perf_counter()
    facts = perceive(y, sr=src.sr, frames=src.frames, audio_duration_s=y.shape[-1] / src.sr,
                     speech_quality=speech_quality)
    perceive_s = time.perf_counter() - t0
    target, left_out = observable_plan(truth, facts)
    faults = sorted({p.family for p in truth.parts} if truth.parts else {truth.family})
    base = {
        "source": source, "case": k, "case_seed": cseed, "family": truth.family,
        "faults": faults, "facts": facts.model_dump(mode="json"), "captions": captions_for(facts, y=y, sr=src.sr, frames=src.frames),
        "target": target.model_dump(mode="json"), "left_out": left_out,
        "truth": [{"action": a, "params": p} for a, p in truth.plan()],
    }
    records = [{**base, "id": f"{source}/{k}", "history": [], "timings_s": {
        "perceive": round(perceive_s, 3)}}]
    if reflect:
        rng = np.random.default_rng(cseed)
        kind, first = weak_plan(target, facts, rng)
        t1 = time.perf_counter()
        scorer = EmbeddedScorer()
        baseline, _ = scorer.score(y, sr=src.sr, frames=src.frames, facts=facts)
        out = y
        for st in first.steps:
            try:
                out = apply_action(st.action, out, sr=src.sr, **st.params)
            except AvagentError as exc:  # recorded like the graph's act node does
                first.notes.append(f"step {st.action} skipped: {exc}")
        if first.steps:
            timing = any(s.action in TIMING_ACTIONS for s in first.steps)
            scores, _ = scorer.score(out, sr=src.sr, frames=src.frames, before=facts,
                                     timing_changed=timing)
        else:
            scores = baseline
        improved = bool(first.steps) and scores.overall > baseline.overall + MIN_GAIN
        rnd = Round(index=1, plan=first, scores=scores, improved=improved,
                    feedback=round_feedback(scores, ACCEPT, improved))
        records.append({**base, "id": f"{source}/{k}/reflect", "weak": kind,
                        "history": [rnd.model_dump(mode="json")],
                        "timings_s": {"perceive": round(perceive_s, 3),
                                      "reflect": round(time.perf_counter() - t1, 3)}})
    return records


def _job(args: tuple[str, int, int, float, bool, bool]) -> list[dict[str, Any]]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return make_case(*args)


# -- rendering --------------------------------------------------------------------------------------
def render(record: dict[str, Any]) -> list[dict[str, str]]:
    """The chat messages of one record: the planner's prompt, then the correct plan."""
    from avagent.agent.prompts import findings_brief, plan_answer, planner_messages
    from avagent.agent.state import Plan, Round
    from avagent.perception.facts import Facts

    facts = Facts.model_validate(record["facts"])
    history = [Round.model_validate(r) for r in record["history"]]
    messages = planner_messages(facts, record["captions"], history)
    target = Plan.model_validate(record["target"])
    answer = plan_answer(target, findings_brief(facts))
    return [*messages, {"role": "assistant", "content": answer}]


def write_splits(records: list[dict[str, Any]], out: Path) -> dict[str, int]:
    """Write ``{train,validation,test}.jsonl`` (messages + metadata) from the records."""
    from avagent.agent.prompts import PROMPT_VERSION

    counts = dict.fromkeys(SPLITS, 0)
    handles = {s: (out / f"{s}.jsonl.tmp").open("w") for s in SPLITS}
    try:
        for r in records:
            meta = {k: r[k] for k in ("id", "source", "split", "family", "faults")}
            line = {**meta, "prompt_version": PROMPT_VERSION, "messages": render(r)}
            handles[r["split"]].write(json.dumps(line, ensure_ascii=False) + "\n")
            counts[r["split"]] += 1
    finally:
        for h in handles.values():
            h.close()
    for s in SPLITS:
        (out / f"{s}.jsonl.tmp").replace(out / f"{s}.jsonl")
    return counts


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with Path(path).open() as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def generate(cfg: DataConfig, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Build the records (perception in ``cfg.workers`` processes) and write the splits.

    Returns the manifest (also written to ``OUT/manifest.json``).
    """
    if cfg.cases_per_source < 1 or cfg.duration_s < 1.0:
        raise ParameterError(f"cases_per_source={cfg.cases_per_source} must be >= 1 and "
                             f"duration_s={cfg.duration_s} >= 1")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    names = source_names(cfg)
    splits = assign_splits(names, cfg.seed, cfg.split)
    rng = np.random.default_rng(cfg.seed)
    jobs = [(n, k, cfg.seed, cfg.duration_s, bool(rng.random() < cfg.reflect_fraction),
             bool(rng.random() < cfg.speech_quality_fraction))
            for n in names for k in range(cfg.cases_per_source)]
    # Records are appended as cases finish (partial.jsonl), so an interrupted run resumes: a
    # rerun with the same config skips the cases already there.
    partial = out / "partial.jsonl"
    done: dict[tuple[str, int], list[dict[str, Any]]] = {}
    if partial.is_file():
        for r in read_jsonl(partial):
            done.setdefault((r["source"], r["case"]), []).append(r)
    todo = [j for j in jobs if (j[0], j[1]) not in done]
    t0 = time.perf_counter()
    with partial.open("a") as f:
        def keep(recs: list[dict[str, Any]]) -> None:
            done[(recs[0]["source"], recs[0]["case"])] = recs
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
            f.flush()
            if progress:
                progress(len(done), len(jobs))

        if cfg.workers > 1 and len(todo) > 1:
            from avagent.bench.suite import warm_numba_cache

            warm_numba_cache()  # the workers would race to compile librosa's kernels
            with ProcessPoolExecutor(cfg.workers) as pool:
                for recs in pool.map(_job, todo, chunksize=1):
                    keep(recs)
        else:
            for job in todo:
                keep(_job(job))
    wall = time.perf_counter() - t0
    records = [r for j in jobs for r in done[(j[0], j[1])]]  # the jobs' order: deterministic
    for r in records:
        r["split"] = splits[r["source"]]
    tmp = out / "records.jsonl.tmp"
    with tmp.open("w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(out / "records.jsonl")
    partial.unlink()
    counts = write_splits(records, out)
    perceive_s = [r["timings_s"]["perceive"] for r in records if not r["history"]]
    reflect_s = [r["timings_s"]["reflect"] for r in records if r["history"]]
    manifest = {
        "config": asdict(cfg), "examples": counts, "cases": len(jobs),
        "sources": {s: sorted(n for n in names if splits[n] == s) for s in SPLITS},
        "wall_s": round(wall, 1), "resumed_cases": len(jobs) - len(todo),
        "perceive_s_mean": round(float(np.mean(perceive_s)), 3) if perceive_s else None,
        "reflect_s_mean": round(float(np.mean(reflect_s)), 3) if reflect_s else None,
        "families": _count(r["family"] for r in records if not r["history"]),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def rerender(out: Path) -> dict[str, int]:
    """Re-write the splits from ``records.jsonl`` (after a prompt change; no perception)."""
    return write_splits(list(read_jsonl(Path(out) / "records.jsonl")), Path(out))


def _count(items: Iterator[str] | Any) -> dict[str, int]:
    c: dict[str, int] = {}
    for x in items:
        c[x] = c.get(x, 0) + 1
    return dict(sorted(c.items()))


__all__ = ["DataConfig", "assign_splits", "generate", "make_case", "observable_plan", "render",
           "rerender", "weak_plan"]


# -- command line -----------------------------------------------------------------------------------
def add_arguments(p: Any) -> None:
    d = DataConfig()
    p.add_argument("--out", default=d.out, help=f"output folder ({d.out})")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of everything (0)")
    p.add_argument("--speech-sources", type=int, default=d.speech_sources)
    p.add_argument("--drum-sources", type=int, default=d.drum_sources)
    p.add_argument("--music-sources", type=int, default=d.music_sources)
    p.add_argument("--cases-per-source", type=int, default=d.cases_per_source)
    p.add_argument("--duration-s", type=float, default=d.duration_s)
    p.add_argument("--reflect-fraction", type=float, default=d.reflect_fraction)
    p.add_argument("--speech-quality-fraction", type=float, default=d.speech_quality_fraction)
    p.add_argument("--workers", type=int, default=d.workers, help="perception processes (2)")
    p.add_argument("--tiny", action="store_true", help="the test-sized configuration")
    p.add_argument("--rerender", action="store_true",
                   help="only re-write the splits from OUT/records.jsonl (after a prompt change)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: Any) -> int:
    if args.rerender:
        print(json.dumps(rerender(Path(args.out))))
        return 0
    cfg = DataConfig.tiny(args.out) if args.tiny else DataConfig(
        out=args.out, seed=args.seed, speech_sources=args.speech_sources,
        drum_sources=args.drum_sources, music_sources=args.music_sources,
        cases_per_source=args.cases_per_source, duration_s=args.duration_s,
        reflect_fraction=args.reflect_fraction,
        speech_quality_fraction=args.speech_quality_fraction, workers=args.workers)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(source_names(cfg)) * cfg.cases_per_source, unit="case")

    def progress(i: int, n: int) -> None:
        if bar is not None:
            bar.n = i
            bar.refresh()

    manifest = generate(cfg, progress)
    if bar is not None:
        bar.close()
    print(json.dumps({k: manifest[k] for k in ("examples", "cases", "wall_s", "perceive_s_mean")}))
    return 0
