"""The job store's database set-up when several processes start on one new database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect

from avagent.service import database, jobs


def test_tables_made_meanwhile_by_another_process(tmp_path: Path) -> None:
    # The real race: between create_all's check and its CREATE, another process (the API, a
    # worker) creates the tables. Caused here by doing exactly that from a second engine.
    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    other = create_engine(url)
    raced: list[bool] = []

    def other_process_wins(target: Any, connection: Any, **kw: Any) -> None:
        if not raced:
            raced.append(True)
            jobs.Base.metadata.create_all(other)

    event.listen(jobs.Base.metadata, "before_create", other_process_wins)
    try:
        engine = database.get_engine(url, jobs.Base.metadata)
    finally:
        event.remove(jobs.Base.metadata, "before_create", other_process_wins)
        other.dispose()
    assert raced
    assert {"jobs", "batches"} <= set(inspect(engine).get_table_names())
