"""AVAGENT_FRAME_COLOUR hands colour frames to perception (the sync estimator's visual events)."""

from __future__ import annotations

import avagent.agent.perceive as perceive_mod
from avagent.service.pipeline import analyze_file
from avagent.service.settings import Settings


def test_colour_frames_reach_perception_only_when_asked(video_path, monkeypatch) -> None:
    seen = []
    real = perceive_mod.perceive

    def spy(y, *, sr, frames, **kw):
        seen.append(frames.colour)
        return real(y, sr=sr, frames=frames, **kw)

    monkeypatch.setattr(perceive_mod, "perceive", spy)
    analyze_file(video_path, settings=Settings())
    analyze_file(video_path, settings=Settings(frame_colour=True))
    assert seen[0] is None
    assert seen[1] is not None and seen[1].ndim == 4 and seen[1].shape[-1] == 3
