"""One exception family for the whole project.

Messages quote the bad value, e.g. ``ParameterError("offset_ms=9000 must be within ±5000")``, so a
user can fix the call without reading our code.
"""


class AvagentError(Exception):
    """Base of every error avagent raises on purpose."""


class ParameterError(AvagentError, ValueError):
    """An argument or action parameter is out of range or of the wrong kind."""


class MediaError(AvagentError):
    """A media file cannot be read or written (missing stream, corrupt, too long, ...)."""


class BackendError(AvagentError):
    """A model backend (LLM server, scorer weights) is unavailable or answered badly."""


class PlanError(AvagentError):
    """A plan does not fit the action table's schema."""
