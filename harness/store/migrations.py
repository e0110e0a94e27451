"""Versioned migrations of the results database (``ba2m-bench db upgrade``).

Each schema change bumps :data:`harness.store.schema.SCHEMA_VERSION` and adds to
:data:`harness.store.schema.MIGRATIONS`, under the version it starts from, the statements that
bring a database to the next version. A database
of another version is refused when opened, with the command that migrates it.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from harness.store.connect import check_version, default_url, make_engine, read_version, to_url
from harness.store.schema import MIGRATIONS, SCHEMA_VERSION, Meta, upgradable


def upgrade(url: str | None = None) -> tuple[str | None, str]:
    """Migrate the database at ``url`` to :data:`SCHEMA_VERSION` in one transaction;
    returns (version found, version now). Raises SchemaVersionError when no path exists."""
    engine, where = make_engine(to_url(url) if url else default_url(), check=False)
    try:
        writer = engine.execution_options(ba2m_write=True)
        with Session(writer) as s, s.begin():
            has_tables, found = read_version(s.connection())
            if not has_tables or found == str(SCHEMA_VERSION):
                return found, found or "empty"
            if not upgradable(found):
                check_version(where, (has_tables, found))
            version = int(found)  # type: ignore[arg-type]
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version]:
                    s.connection().exec_driver_sql(statement)
                version += 1
            s.execute(update(Meta).where(Meta.key == "schema_version")
                      .values(value=str(SCHEMA_VERSION)))
        return found, str(SCHEMA_VERSION)
    finally:
        engine.dispose()
