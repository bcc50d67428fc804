"""Media I/O with PyAV (bundled FFmpeg): probe, decode audio, sample frames, write, remux.

Everything FFmpeg opens can be read (mp4, mkv, webm, mov, avi, ogv; wav, flac, ogg, mp3, m4a).
Audio is decoded at its native rate with all its channels as float32 ``(channels, n)``; nothing
is resampled. Video frames are decoded one at a time and only the sampled ones are kept, as small
grayscale arrays, so a long video never sits in memory.

Timeline. Audio and sampled frames share one clock whose zero is the start of the video stream
(``start_time`` of the first real video stream; for an audio-only file, its first audio sample):

* audio that starts after the video (a positive audio ``start_time``) is preceded by silence,
  audio before the video's start is dropped, and a timestamp gap of more than
  ``GAP_FILL_S`` inside the audio stream is filled with silence, so sample ``k`` plays at
  ``k / sr`` seconds on the video's timeline;
* encoder priming (AAC's 1024 leading samples) is removed by FFmpeg itself from the edit list /
  skip-samples side data; trailing encoder padding beyond the stream's declared duration (at most
  ``PADDING_TRIM_SAMPLES``) is trimmed;
* frame times are seconds on the same clock;
* timestamps that jump back (concatenated files) are continued, not obeyed, in frames and in
  remuxed packets, matching the audio, which is decoded as one continuous run.

:func:`remux` writes the new audio starting at the video's start, so a decode → remux round trip
keeps the audio where it was. The video packets are copied unchanged (no re-encode).

Truncation: :func:`probe` reads headers only; the decoders compare what they got with the
declared duration (mp4/mov, mkv/webm, flac declare one) and raise on less than 90 %. Ogg and WAV
durations come from the data actually present, so a cut file there decodes as a shorter file.

Every failure is a :class:`~avagent.errors.MediaError` naming the file and what is wrong. Writes
go to a temporary file in the destination's folder and are renamed into place on success; a
destination that is one of the inputs is refused.

The parts: :mod:`.container` (opening, probing), :mod:`.decode` (audio), :mod:`.frames`
(sampled frames), :mod:`.write` (atomic outputs, audio files) and :mod:`.remuxing`; this package
is their public API.
"""

from avagent.service.media.container import (
    AUDIO_EXTS,
    GAP_FILL_S,
    PADDING_TRIM_SAMPLES,
    VIDEO_EXTS,
    MediaInfo,
    PathLike,
    probe,
)
from avagent.service.media.decode import iter_audio, load_audio
from avagent.service.media.frames import iter_frames, load_frames
from avagent.service.media.remuxing import remux
from avagent.service.media.spool import Spool
from avagent.service.media.write import (
    AUDIO_WRITE_EXTS,
    atomic_output,
    refuse_overwrite,
    subtype_for,
    subtypes,
    write_audio,
)

__all__ = [
    "AUDIO_EXTS",
    "AUDIO_WRITE_EXTS",
    "GAP_FILL_S",
    "PADDING_TRIM_SAMPLES",
    "VIDEO_EXTS",
    "MediaInfo",
    "PathLike",
    "Spool",
    "atomic_output",
    "iter_audio",
    "iter_frames",
    "load_audio",
    "load_frames",
    "probe",
    "refuse_overwrite",
    "remux",
    "subtype_for",
    "subtypes",
    "write_audio",
]
