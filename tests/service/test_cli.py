"""The command line's own mechanics: which subcommands it offers, and a reader that goes away."""

from __future__ import annotations

import subprocess
import sys

import pytest

from avagent.service import cli
from tests.service.conftest import REPO


def test_a_subcommand_whose_module_is_missing_is_not_offered(monkeypatch, capsys) -> None:
    monkeypatch.setitem(cli.COMMANDS, "later", ("avagent.service.commands.not_built_yet", "soon"))
    parser = cli.build_parser()
    assert "later" not in parser.format_help()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["later"])
    assert exc.value.code == 2 and "invalid choice: 'later'" in capsys.readouterr().err
    assert parser.parse_args(["actions"]).command == "actions"


def test_a_broken_import_inside_a_subcommand_is_not_hidden(monkeypatch) -> None:
    # The module exists but imports something that does not: that is a bug, not "not built".
    monkeypatch.setitem(cli.COMMANDS, "broken", ("tests.service.broken_command", "broken"))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency"):
        cli.build_parser()


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    # `avagent actions --json | head -1`: the reader closes before the JSON is written.
    reader = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.close()"],
                              stdin=subprocess.PIPE)
    reader.wait(timeout=30)
    proc = subprocess.run([sys.executable, "-m", "avagent.service.cli", "actions", "--json"],
                          stdout=reader.stdin, stderr=subprocess.PIPE, text=True, cwd=REPO,
                          timeout=60)
    reader.stdin.close()
    assert proc.returncode == 141
    assert proc.stderr == ""
