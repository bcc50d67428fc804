"""What every action shares: parameter models and how their validation errors read.

An action is a pure function ``f(y, *, sr, **params) -> y`` over float arrays shaped ``(..., n)``.
Its keyword parameters are mirrored by a pydantic model (units in the field names) so the planner
can be given a JSON schema and a plan can be checked before anything runs.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from avagent.errors import ParameterError


class ActionParams(BaseModel):
    """Base of every action's parameter model: unknown keys are errors, values are checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=ActionParams)


def parse_params(model: type[P], action: str, params: dict[str, Any]) -> P:
    """Validate ``params`` against ``model``; raise :class:`ParameterError` quoting the bad value.

    >>> class Gain(ActionParams):
    ...     gain_db: float = 0.0
    >>> parse_params(Gain, "volume", {"gain_db": 3}).gain_db
    3.0
    """
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "params"
            value = params.get(str(err["loc"][0])) if err["loc"] else params
            if err["type"] == "extra_forbidden":
                valid = ", ".join(model.model_fields)
                parts.append(f"unknown parameter {field}={value!r} (valid: {valid})")
            else:
                parts.append(f"{field}={value!r} {_reason(err['msg'])}")
        raise ParameterError(f"{action}: " + "; ".join(parts)) from None


def _reason(msg: str) -> str:
    # pydantic says "Input should be greater than 0"; we say "must be greater than 0".
    for prefix in ("Input should be ", "Value error, "):
        if msg.startswith(prefix):
            rest = msg[len(prefix) :]
            return rest if prefix == "Value error, " else "must be " + rest
    return msg
