"""avagent core: what every layer shares, below all of them (it imports none of them).

* ``errors`` (the exception family), ``audio`` (validation at the boundary);
* shared signal code that perception and actions both use: ``dsp`` (STFT, noise PSD, floor
  confidence), ``loudness`` (BS.1770 loudness, true peak), ``hum`` (the 50/60 Hz comb
  detector), ``dropouts`` (the dropout detector);
* ``rates``: clock-rate constants (PAL and the other known speed-ups), defined once.

The layers are sub-packages: ``avagent.perception``, ``avagent.actions``, ``avagent.reflection``,
``avagent.agent``, ``avagent.service``, ``avagent.training``, ``avagent.bench``.
"""

from avagent.errors import AvagentError, BackendError, MediaError, ParameterError, PlanError

__version__ = "0.1.0"

__all__ = [
    "AvagentError",
    "BackendError",
    "MediaError",
    "ParameterError",
    "PlanError",
    "__version__",
]
