"""A report reads the database and writes files, nothing else: counts are what
``ba2m-bench count`` stored (for this code), and ``report/`` runs nothing itself."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import suites
from harness.cli import app
from harness.costs.cache import count_key, stored_counts
from harness.costs.compare import cost_table
from harness.errors import UserError
from harness.plan.spec import model_spec
from harness.report import build_report, generate_report
from harness.store.db import ResultsDB

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding the counts of Table VII's two models, and nothing else."""
    path = tmp_path_factory.mktemp("counted") / "ba2m.sqlite"
    result = runner.invoke(app, ["count", "--table", "VII", "--format", "csv",
                                 "--db", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_count_stores_every_count_under_the_code_fingerprint(counted: Path) -> None:
    t7 = suites.get("table7")
    with ResultsDB(str(counted), read_only=True) as db:
        for row in t7.rows:
            spec = model_spec(t7, row)
            assert db.model_stats(count_key(spec)) is not None
            assert db.model_stats(spec.hash()) is None  # never without the fingerprint
            assert stored_counts(db, spec).params > 20e6


def test_report_shows_stored_counts_and_changes_nothing(counted: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in counted.parent.iterdir()), _sha(counted)
    report, files = generate_report(["table7"], ["markdown", "csv", "html"], tmp_path / "r",
                                    str(counted))
    assert (sorted(p.name for p in counted.parent.iterdir()), _sha(counted)) == before
    rows = report.suites[0].rows
    assert all(r.params_m and r.flops_g and r.cost_status for r in rows)
    assert not any("ba2m-bench count --table" in m for m in report.suites[0].messages)
    assert files["markdown"].read_text().count("| counted |") == 2  # the Status/count column


def test_unstored_counts_show_no_number_and_say_how_to_get_them(tmp_path: Path) -> None:
    db_path = tmp_path / "nocounts.sqlite"
    ResultsDB(str(db_path)).close()
    report = build_report(["table7", "table8", "table14"], str(db_path))
    t7, t8, t14 = report.suites
    for sr, n in ((t7, 2), (t8, 5)):
        hints = [m for m in sr.messages if "ba2m-bench count" in m]
        assert hints == [f"params/FLOPs of {n} row(s) are not stored in this database: run "
                         f"`ba2m-bench count --table {sr.name}` (same --db) to count and "
                         "store them."]
        assert all(r.params_m is None and r.flops_g is None for r in sr.rows)
    assert not any("ba2m-bench count" in m for m in t14.messages)  # detection: no costs
    assert not any("ba2m-bench count" in m
                   for m in build_report(["table7"], str(db_path), costs="none").suites[0].messages)


def test_a_count_made_by_other_code_is_not_read(tmp_path: Path) -> None:
    t7 = suites.get("table7")
    with ResultsDB(str(tmp_path / "stale.sqlite")) as db:
        for row in t7.rows:  # as older ba2m-bench stored them: keyed by the model hash alone
            db.save_model_stats(model_spec(t7, row).hash(), 1, 1, 1, "old", {})
    report = build_report(["table7"], str(tmp_path / "stale.sqlite"))
    assert all(r.params_m is None for r in report.suites[0].rows)


def test_report_no_longer_counts(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="store the counts with `ba2m-bench count`"):
        build_report(["table7"], str(tmp_path / "x.sqlite"), costs="count")
    result = runner.invoke(app, ["report", "table7", "--costs", "count",
                                 "--db", str(tmp_path / "x.sqlite"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown costs mode 'count'" in result.output
    assert not (tmp_path / "x.sqlite").exists()


def test_stored_counts_are_read_not_counted_again(counted: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.costs import cache

    monkeypatch.setattr(cache, "_memo", {})  # nothing remembered in this process
    monkeypatch.setattr(cache, "count", lambda *a, **k: pytest.fail("counted again"))
    with ResultsDB(str(counted), read_only=True) as db:
        rows = cost_table([suites.get("table7")], db=db, workers=1)
    assert all(r.params_m and r.flops_g for r in rows)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import statement in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "harness" / "report").glob("*.py")),
                         ids=lambda p: p.name)
def test_report_imports_no_training_execution_or_private_names(path: Path) -> None:
    for module, names in _imports(path):
        assert not module.startswith(("harness.training", "harness.execute")), module
        private = [n for n in names if n.startswith("_") and n != "__future__"]
        assert not private, (module, private)
        assert module != "harness.costs" or not names, "no module aliases of costs' state"


def test_counts_remembered_in_the_process_are_stored_too(tmp_path: Path) -> None:
    """A count made earlier in the process (here: without a database) still reaches a
    database that lacks it, so a report on that database finds it."""
    table7 = suites.get("table7")
    cost_table([table7])  # counted (or remembered), stored nowhere
    with ResultsDB(str(tmp_path / "db.sqlite")) as db:
        cost_table([table7], db=db)
        for row in table7.rows:
            assert db.model_stats(count_key(model_spec(table7, row))) is not None, row.label
