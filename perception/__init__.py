"""Perception: measured audio, video and audio-visual facts (no I/O)."""
