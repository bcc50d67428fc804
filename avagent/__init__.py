"""avagent core: the exception family and audio validation shared by every layer.

The product lives in the sibling packages ``actions``, ``reflection``, ``agent``, ``service`` and
``training``; this package sits below all of them and imports none.
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
