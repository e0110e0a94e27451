"""Opening a results database URL: the engine, SQLite's settings, and the version check.

SQLite (default ``sqlite:///results/ba2m.sqlite``, or ``$BA2M_DB``; a plain path is a SQLite
file) or PostgreSQL (``postgresql+psycopg://user:pass@host/db``; a bare ``postgresql://`` uses
psycopg too). Several processes may share one SQLite file: connections use WAL and a 30 s busy
timeout, and write transactions start with ``BEGIN IMMEDIATE``. A read-only engine
(``read_only=True``) writes nothing and takes no write lock: SQLite connections are
``query_only`` and leave the journal mode alone, PostgreSQL transactions are ``READ ONLY``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from harness.errors import UserError
from harness.store.schema import SCHEMA_VERSION, TABLES, Meta, upgradable

DEFAULT_URL = "sqlite:///results/ba2m.sqlite"
FIX = "start a new database with --db PATH, or migrate"
UPGRADE_FIX = "run `ba2m-bench db upgrade` (with the same --db) to migrate it"
PG_DRIVER_FIX = ("install the PostgreSQL driver with pip install -e '.[postgres]' and use a "
                 "URL like postgresql+psycopg://user:pass@host/db")
HINT = "use a SQLite path or a URL like sqlite:///results/ba2m.sqlite or postgresql://..."


class DatabaseError(UserError):
    """The results database cannot be opened; the message is one line naming the fix."""


class SchemaVersionError(DatabaseError):
    """The database was written by another schema version."""


def one_line(err: BaseException) -> str:
    """An exception's text on one line (drivers print several)."""
    return " ".join(str(err).split())


def default_url() -> str:
    """``$BA2M_DB`` (a URL or a SQLite path) if set, else ``sqlite:///results/ba2m.sqlite``."""
    return to_url(os.environ.get("BA2M_DB") or DEFAULT_URL)


def to_url(url_or_path: str) -> str:
    """A URL as given, or a SQLite URL for a plain file path."""
    return url_or_path if "://" in url_or_path else f"sqlite:///{url_or_path}"


def _sqlite_settings(read_only: bool) -> Any:
    def on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event below emits BEGIN
        busy_ms = int(os.environ.get("BA2M_SQLITE_BUSY_MS", 30000))  # wait this long for a lock
        pragmas = [f"busy_timeout={busy_ms}", "foreign_keys=ON"]
        pragmas += ["query_only=ON"] if read_only else ["journal_mode=WAL"]
        for pragma in pragmas:
            dbapi_conn.execute(f"PRAGMA {pragma}")

    return on_connect


def _sqlite_on_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("ba2m_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def read_version(conn: Connection) -> tuple[bool, str | None]:
    """(whether any ba2m table exists, the stored schema version or None)."""
    names = set(inspect(conn).get_table_names())
    version = None
    if "meta" in names:
        version = conn.scalar(select(Meta.value).where(Meta.key == "schema_version"))
    return bool(names & TABLES), version


def check_version(where: str, found: tuple[bool, str | None]) -> bool:
    """True if the database is empty; raises SchemaVersionError if it is from another version."""
    has_tables, version = found
    if not has_tables:
        return True
    if version != str(SCHEMA_VERSION):
        shown = "none (ba2m tables without a version)" if version is None else version
        fix = UPGRADE_FIX if upgradable(version) else FIX
        raise SchemaVersionError(
            f"{where}: results database has schema version {shown}, this ba2m-bench expects "
            f"{SCHEMA_VERSION}; {fix}")
    return False


def _probe_sqlite_file(path: Path, check: bool = True) -> None:
    """Check an existing SQLite file with SELECTs only: no PRAGMA, nothing written."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        header = f.read(16)
    bad = f"{path} is not a SQLite database; give another file with --db PATH (it is left as is)"
    if header != b"SQLite format 3\x00":
        raise DatabaseError(bad)
    uri = f"{path.resolve().as_uri()}?mode=rw"  # rw, not ro: a WAL file's -shm/-wal get removed
    probe = create_engine("sqlite://", poolclass=NullPool,
                          creator=lambda: sqlite3.connect(uri, uri=True))
    try:
        with probe.connect() as conn:
            found = read_version(conn)
    except sa_exc.DBAPIError as err:
        raise DatabaseError(f"{bad} ({one_line(err.orig)})") from err
    finally:
        probe.dispose()
    if check:
        check_version(str(path), found)


def make_engine(url: str, *, check: bool = True, read_only: bool = False) -> tuple[Engine, str]:
    """The engine and a printable name for messages (file path or password-less URL).

    An existing SQLite file of another schema version is refused unless ``check`` is false
    (``db upgrade``). ``read_only``: nothing is created (no folder, no file) and nothing can
    be written through the engine."""
    shown, parsed = repr(url), None
    try:
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):  # SQLAlchemy would pick psycopg2
            parsed = parsed.set(drivername="postgresql+psycopg")
        shown = repr(parsed.render_as_string(hide_password=True))
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            path = Path(parsed.database).absolute()
            _probe_sqlite_file(path, check)
            if not read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
            parsed = parsed.set(database=str(path))
        elif parsed.get_backend_name() == "postgresql":
            kwargs["pool_pre_ping"] = True  # a long epoch may outlive an idle pooled connection
            if parsed.get_driver_name() == "psycopg" and "connect_timeout" not in parsed.query:
                kwargs["connect_args"] = {"connect_timeout": 15}
        engine = create_engine(parsed, **kwargs)
    except ImportError as err:
        if parsed is not None and parsed.get_backend_name() == "postgresql":
            raise DatabaseError(f"cannot open results database {shown}: its driver is missing "
                                f"({one_line(err)}); {PG_DRIVER_FIX}") from err
        raise DatabaseError(f"cannot open results database {shown}: {one_line(err)}; {HINT}") \
            from err
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ValueError) as err:
        raise DatabaseError(f"cannot open results database {shown}: {one_line(err)}; {HINT}") \
            from err
    if engine.dialect.name not in ("sqlite", "postgresql"):
        raise DatabaseError(f"results database {shown}: backend {engine.dialect.name!r} is not "
                            f"supported; {HINT}")
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_settings(read_only))
        event.listen(engine, "begin", _sqlite_on_begin)
        where = parsed.database or ":memory:"
    else:
        if read_only:
            engine = engine.execution_options(postgresql_readonly=True)
        where = parsed.render_as_string(hide_password=True)
    return engine, where
