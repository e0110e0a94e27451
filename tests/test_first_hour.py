"""A new user's first commands: light commands stay light, and nothing prints warnings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LIGHT = [["--help"], ["suites"], ["paper", "--table", "V"], ["status", "--db", "{db}"]]


@pytest.mark.parametrize("args", LIGHT, ids=lambda a: a[0])
def test_light_commands_do_not_import_torch(args: list[str], tmp_path: Path) -> None:
    """``--help``, ``suites``, ``paper`` and ``status`` answer without importing torch,
    torchvision, fvcore or matplotlib (importing torch alone takes seconds)."""
    argv = [a.format(db=tmp_path / "db.sqlite") for a in args]
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom harness.cli import app\n"
            f"r = CliRunner().invoke(app, {argv!r})\n"
            "assert r.exit_code == 0, r.output\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'fvcore', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
    assert not (tmp_path / "db.sqlite").exists()  # status read an absent database: no file


def test_counting_imports_fvcore_without_a_warning() -> None:
    """fvcore's import prints torch.jit.script's FutureWarning five times (``count`` and, before
    it only read the database, ``report`` showed them); it is silenced where fvcore is imported,
    for that import only: the same warning raised afterwards still reaches the user."""
    code = ("import warnings\nimport harness.costs.counting\n"
            "warnings.warn('`torch.jit.script` is deprecated', FutureWarning)")
    out = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stderr.count("FutureWarning") == 1, out.stderr
    assert "<string>\", line 3" in out.stderr  # raised by the last line, not by the import


def test_report_prints_no_warning(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-W", "default", "-m", "harness", "report", "table7",
                          "--db", str(tmp_path / "db.sqlite"), "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr
