"""A subcommand module whose own import fails (used by tests/service/test_cli.py)."""

import no_such_dependency  # noqa: F401
