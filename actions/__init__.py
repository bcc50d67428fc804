"""Repair actions: pure signal functions ``f(y, *, sr, **params) -> y`` and their table.

Importing this package is cheap; each action's module is imported when it first runs.
"""

from avagent.actions.registry import (
    ACTIONS,
    FAMILIES,
    ActionSpec,
    Family,
    action_names,
    apply_action,
    get_action,
    plan_json_schema,
)

__all__ = [
    "ACTIONS",
    "FAMILIES",
    "ActionSpec",
    "Family",
    "action_names",
    "apply_action",
    "get_action",
    "plan_json_schema",
]
