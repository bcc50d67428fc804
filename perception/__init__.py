"""Perception: measured audio, video and audio-visual facts (no I/O).

``audio`` (front door :func:`~avagent.perception.audio.analyze_audio`, with ``spectrum``,
``features``, ``faults`` and ``noise`` beside it), ``vad`` and ``dnsmos`` (speech), ``video``
(motion, cuts), ``sync`` (offset, drift), ``facts`` (the models), ``frames`` (``FrameSet``).
"""
