"""Clock-rate changes between a film's audio and its picture, defined once.

Perception (:mod:`avagent.perception.sync`: the rates it recognises from stream durations), the
rule planner (:mod:`avagent.agent.planner`: naming a PAL speed-up) and the benchmark's fault
generator (:mod:`avagent.bench.corrupt`) all read these.
"""

from __future__ import annotations

FILM_FPS = 23.976
PAL_FPS = 25.0
PAL_RATE = PAL_FPS / FILM_FPS  # audio clock / video clock after a PAL speed-up: 4.27 % fast
NTSC_PAL = FILM_FPS / PAL_FPS  # the speed that undoes it
# Known speed-ups (audio clock / video clock): PAL from film, PAL from 24 fps, 24 fps from film,
# NTSC 1.001. Perception matches stream-duration ratios against these, either way round.
KNOWN_RATES = (PAL_RATE, 25 / 24, 24 / 23.976, 30 / 29.97)
