"""Validation of audio arrays at the boundary: after this, code inside trusts its input."""

from __future__ import annotations

import numpy as np

from avagent.errors import ParameterError


def validate_audio(y: object, *, sr: object = None, name: str = "y") -> np.ndarray:
    """Check that ``y`` is a finite, non-empty float array shaped ``(..., n)``.

    Parameters
    ----------
    y : array-like
        Audio samples, last axis is time.
    sr : int, optional
        Sample rate in Hz; checked to be a positive integer when given.
    name : str
        Name used in error messages.

    Returns
    -------
    np.ndarray
        ``y`` as a float32 or float64 array (float32 is kept, everything else becomes float64).

    Examples
    --------
    >>> validate_audio([0.0, 0.5, -0.5]).shape
    (3,)
    """
    if sr is not None and (
        isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or int(sr) <= 0
    ):
        raise ParameterError(f"sr={sr!r} must be a positive integer in Hz")
    arr = np.asarray(y)
    if arr.ndim == 0:
        raise ParameterError(f"{name} must be an array shaped (..., n), got a scalar")
    if arr.shape[-1] == 0:
        raise ParameterError(f"{name} is empty (shape {arr.shape})")
    if not np.issubdtype(arr.dtype, np.floating):
        if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
            raise ParameterError(
                f"{name} has dtype {arr.dtype}; convert to float in [-1, 1] first"
            )
        raise ParameterError(f"{name} has unsupported dtype {arr.dtype}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} contains NaN or infinite samples")
    return arr
