"""A PostgreSQL server for tests: a session-scoped server and a fresh database per test.

Usage in a test module (tests/conftest.py makes both fixtures available everywhere, and marks
the tests that use them ``postgres``)::

    def test_something(pg_url: str) -> None:
        with ResultsDB(pg_url) as db:  # an empty database of its own
            ...

Where the server comes from, in order:

1. ``$BA2M_TEST_PG_URL`` (e.g. ``postgresql+psycopg://user:pass@host:5432/db``): that server.
   Each test gets a database created for it (``CREATE DATABASE``, dropped afterwards); if the
   role may not create databases, the tests share the given database and every ba2m table in
   it is dropped before each test.
2. Otherwise a throwaway server started once per pytest process from the PostgreSQL binaries
   found in ``/usr/lib/postgresql/*/bin`` (newest first) or on ``PATH`` (``initdb``,
   ``pg_ctl``): a temporary data directory, ``127.0.0.1`` on a free port, trust
   authentication, fsync off; run as the ``postgres`` system user when the tests run as root
   (PostgreSQL refuses root). It is stopped and its directory deleted when the session ends
   (or at interpreter exit).
3. Neither: the tests that use the fixtures are skipped, saying why. They are also skipped
   when the psycopg driver is missing (``pip install -e '.[postgres]'``).

The server is shared by every module that imports these fixtures (one server per process, not
one per importing module). ``pg_url`` yields a ``postgresql+psycopg://`` URL of an empty
database; :func:`start_server` and :class:`PgServer` can be used outside pytest too.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ENV_URL = "BA2M_TEST_PG_URL"
SYSTEM_USER = "postgres"  # the system user a root test run starts the server as
START_TIMEOUT_S = 60


class PgUnavailable(Exception):
    """No server can be had here; the message says why (the tests skip with it)."""


def _psycopg_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs use the psycopg (3) driver."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare):]
    return url


def _engine(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


@dataclass
class PgServer:
    """A reachable server: ``url`` is its maintenance database; ``managed`` if we started it."""

    url: str
    managed: bool = False
    data_dir: Path | None = None
    can_create: bool = True
    _stop: object = field(default=None, repr=False)

    def fresh_database(self) -> str:
        """The URL of a new empty database (or of the shared one, emptied of ba2m tables)."""
        from sqlalchemy import exc, text
        from sqlalchemy.engine import make_url

        if self.can_create:
            name = f"ba2m_test_{uuid.uuid4().hex[:12]}"
            engine = _engine(self.url)
            try:
                with engine.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                return make_url(self.url).set(database=name).render_as_string(
                    hide_password=False)
            except exc.ProgrammingError:  # no CREATEDB privilege: share the given database
                if self.managed:
                    raise
                self.can_create = False
            finally:
                engine.dispose()
        self._drop_ba2m_tables()
        return self.url

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`fresh_database` (the shared one is only emptied)."""
        from sqlalchemy import exc, text
        from sqlalchemy.engine import make_url

        if url == self.url:
            return
        name = make_url(url).database
        engine = _engine(self.url)
        try:
            with engine.connect() as conn:
                try:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                except exc.ProgrammingError:  # before PostgreSQL 13
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        finally:
            engine.dispose()

    def _drop_ba2m_tables(self) -> None:
        from harness.store.schema import Base

        engine = _engine(self.url)
        try:
            with engine.connect() as conn:
                Base.metadata.drop_all(conn)
        finally:
            engine.dispose()


# ------------------------------------------------------------------------ starting a server
def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian's newest, else the one on PATH."""
    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit()) or (0,)

    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if all(os.access(Path(folder, exe), os.X_OK) for exe in ("initdb", "pg_ctl")):
            return Path(folder)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_server() -> PgServer:
    """Start a throwaway server (see the module docstring); raises PgUnavailable if there are
    no binaries, RuntimeError if they are there but the server does not start."""
    bindir = find_binaries()
    if bindir is None:
        raise PgUnavailable(f"no PostgreSQL server here: set {ENV_URL}, or install the server "
                            "binaries (initdb, pg_ctl; Debian: apt-get install postgresql)")
    prefix: list[str] = []
    base = tempfile.gettempdir()
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PgUnavailable(f"tests run as root and PostgreSQL refuses root, but there is no "
                                f"{SYSTEM_USER!r} system user to run it as") from None
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PgUnavailable("tests run as root and there is no runuser to start "
                                f"PostgreSQL as {SYSTEM_USER!r}")
        prefix = [runuser, "-u", SYSTEM_USER, "--"]
        if not os.stat(base).st_mode & 0o001:  # the postgres user must reach the folder
            base = "/tmp"
    root = Path(tempfile.mkdtemp(prefix="ba2m-pg-", dir=base))
    if prefix:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, log = root / "data", root / "server.log"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}

    def run(*args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=timeout)

    def cleanup() -> None:
        if (data / "postmaster.pid").exists():
            for mode in ("fast", "immediate"):
                try:
                    if run(str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", mode, "-w",
                           "-t", "20", timeout=30).returncode == 0:
                        break
                except subprocess.TimeoutExpired:
                    pass
        shutil.rmtree(root, ignore_errors=True)

    try:
        done = run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {' | '.join(done.stderr.strip().splitlines())}")
        for _ in range(3):  # the free port may be taken by someone else before we bind it
            port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=200 -c shared_buffers=32MB")
            done = run(str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w",
                       "-t", str(START_TIMEOUT_S), "-o", options, timeout=START_TIMEOUT_S + 10)
            if done.returncode == 0:
                break
        else:
            raise RuntimeError(f"PostgreSQL did not start: {_tail(log)}")
    except BaseException:
        cleanup()
        raise
    return PgServer(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", managed=True,
                    data_dir=data, _stop=cleanup)


# -------------------------------------------------------------- one server per test process
_lock = threading.Lock()
_shared: dict[str, object] = {"server": None, "error": None, "users": 0}


def _stop_shared() -> None:
    with _lock:
        server, _shared["server"] = _shared["server"], None
    if isinstance(server, PgServer) and callable(server._stop):
        server._stop()


atexit.register(_stop_shared)


def acquire_server() -> PgServer:
    """The process's server, started on first use; raises PgUnavailable or RuntimeError."""
    with _lock:
        if isinstance(_shared["error"], BaseException):
            raise _shared["error"]
        if _shared["server"] is None:
            try:
                import psycopg  # noqa: F401
            except ImportError:
                _shared["error"] = PgUnavailable(
                    "the PostgreSQL driver psycopg is not installed: pip install -e '.[postgres]'")
                raise _shared["error"] from None
            try:
                if os.environ.get(ENV_URL):
                    _shared["server"] = PgServer(_psycopg_url(os.environ[ENV_URL]))
                else:
                    _shared["server"] = start_server()
            except (PgUnavailable, RuntimeError, OSError, subprocess.TimeoutExpired) as err:
                _shared["error"] = err
                raise
        _shared["users"] = int(_shared["users"]) + 1
        return _shared["server"]  # type: ignore[return-value]


def release_server() -> None:
    """One user fewer; the last one stops the server."""
    with _lock:
        _shared["users"] = int(_shared["users"]) - 1
        last = _shared["users"] <= 0
    if last:
        _stop_shared()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (skips the test if none can be had)."""
    try:
        server = acquire_server()
    except PgUnavailable as err:
        pytest.skip(str(err))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        pytest.fail(f"PostgreSQL binaries found but no server: {err}", pytrace=False)
    try:
        yield server
    finally:
        release_server()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """URL of an empty database of this test's own, dropped afterwards."""
    url = pg_server.fresh_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)
