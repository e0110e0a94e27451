"""The ``ba2m-bench`` command line: thin typer commands over the library modules."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import DBAPIError

import suites
from harness.errors import RunFailure, UserError, database_failure
from harness.execute.options import RunOptions
from harness.store.status import JobStatus

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Reproduce the BA²M paper's tables: count, run, report.",
)
_WIDTH = None if sys.stdout.isatty() else 160  # pipes and CI logs get readable tables
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)

F = TypeVar("F", bound=Callable[..., Any])


@app.callback()
def _root() -> None:
    """Reproduce the BA²M paper's tables: count, run, report."""

FORMATS = ("table", "csv", "json", "markdown")


def friendly(fn: F) -> F:
    """Turn a user error into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UserError, suites.SuitePluginError) as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (RunFailure, DBAPIError) as exc:
            text = str(exc) if isinstance(exc, RunFailure) else database_failure(exc)
            err_console.print(f"error: {text}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def select_suites(table: str | None) -> list[suites.Suite]:
    """All suites, or the one named by suite name ("table5") or paper numeral ("V")."""
    if table is None:
        return suites.all_suites()
    found = suites.find(table)
    if found is not None:
        return [found]
    numerals = [s.table for s in suites.all_suites() if suites.roman_value(s.table)]
    raise UserError(
        f"unknown table {table!r}; use a suite name ({', '.join(suites.NAMES)}) "
        f"or a roman numeral ({numerals[0]}..{numerals[-1]})"
    )


def emit(frame: pd.DataFrame, fmt: str, title: str) -> None:
    """Print ``frame`` as a rich table, CSV, JSON records or a markdown table."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif fmt == "json":
        sys.stdout.write(json.dumps(frame.to_dict(orient="records"), indent=1) + "\n")
    elif fmt == "markdown":
        sys.stdout.write(frame.fillna("").to_markdown(index=False) + "\n")
    else:
        table = Table(title=title, show_lines=False)
        for col in frame.columns:
            table.add_column(str(col), overflow="fold")
        for rec in frame.itertuples(index=False):
            table.add_row(*("" if pd.isna(v) else str(v) for v in rec))
        console.print(table)


@app.command()
@friendly
def count(
    table: str = typer.Option(None, "--table", "-t", help="Suite name or roman numeral."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or markdown."),
    check: bool = typer.Option(False, "--check", help="Exit 1 on any mismatch; checks the "
                               "classification rows only (detection rows, which the paper "
                               "gives no costs, are left out)."),
    db: str = typer.Option(None, "--db", envvar="BA2M_DB", help="SQLAlchemy URL or SQLite "
                           "path; counts are read from and stored in its model_stats."),
    add_methods: list[str] = typer.Option(None, "--add-method", help="Also count the rows "
                                          "`run --add-method` adds (repeatable; those of the "
                                          "database's jobs are counted without it)."),
    plugins: list[str] = typer.Option(None, "--plugin", help="Import this module first "
                                      "(repeatable; also BA2M_PLUGINS)."),
) -> None:
    """Params and FLOPs of every declared row, and of the rows `run --add-method` added to the
    database's jobs, beside the paper's values (detection rows: ours alone, on one image at the
    paper's scale); the counts are stored in the database, where reports read them."""
    from harness.costs.compare import cost_table, unused_deviations
    from harness.plan.plugins import check_methods, load_plugins, with_added, with_stored_added
    from harness.store.db import ResultsDB

    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    load_plugins(tuple(plugins or ()))
    chosen = select_suites(table)
    if add_methods:
        if table is None:
            raise UserError("--add-method needs --table (the suite the rows were added to)")
        chosen = [with_added(s, tuple(add_methods)) for s in chosen]
    with ResultsDB(db) as rdb:
        chosen = [with_stored_added(s, rdb.results_frame(s.name)["config"]) for s in chosen]
        check_methods(r.method for s in chosen for r in s.rows if r.added)
        rows = cost_table(chosen, db=rdb, detection=not check)
    frame = pd.DataFrame([r.to_dict() for r in rows])
    title = "Params (M) and FLOPs (G, multiply-accumulates) vs the paper"
    if fmt == "table":
        _print_cost_table(frame, title)
    else:
        emit(frame, fmt, title)
    statuses = frame["status"].value_counts().to_dict() if len(frame) else {}
    summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    err_console.print(f"{len(frame)} rows: {summary}", highlight=False)
    if table is None:
        for dev in unused_deviations(rows):
            err_console.print(f"note: known deviation not needed by any row: {dev.reason[:80]}")
    if check and statuses.get("mismatch", 0):
        raise typer.Exit(1)


@app.command("suites")
@friendly
def list_suites(
    plugins: list[str] = typer.Option(None, "--plugin", help="Import this module first (a "
                                      "suite it defines is listed; repeatable; also "
                                      "BA2M_PLUGINS)."),
) -> None:
    """Every suite with its table, dataset and job counts per profile (plugins' too)."""
    from harness.plan.plugins import load_plugins
    from harness.plan.profiles import PROFILES
    from harness.plan.sizes import suite_size

    load_plugins(tuple(plugins or ()))
    rows = []
    for s in suites.all_suites():
        sizes = {p: suite_size(s, prof) for p, prof in PROFILES.items()}
        rows.append({
            "suite": s.name, "table": s.table, "dataset": s.dataset, "rows": len(s.rows),
            **{f"{p} jobs": size.jobs for p, size in sizes.items()},
            "runnable now": sizes["paper"].runnable,
            "title": s.title,
        })
    emit(pd.DataFrame(rows), "table", "Suites (one per paper table or figure)")


@app.command()
@friendly
def methods(
    plugins: list[str] = typer.Option(None, "--plugin", help="Import this module first "
                                      "(repeatable; also BA2M_PLUGINS)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or markdown."),
) -> None:
    """Every attention method: name, placement, where it came from, options and defaults."""
    from harness.plan.plugins import load_plugins, method_table

    load_plugins(tuple(plugins or ()))
    emit(pd.DataFrame(method_table()), fmt, "Attention methods (built-in and plugins)")


@app.command()
@friendly
def paper(
    table: str = typer.Option(None, "--table", "-t", help="Suite name or roman numeral."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv, json or markdown."),
) -> None:
    """Every value the paper prints, in long form (as declared in the suites)."""
    from suites.paper import paper_values, to_csv

    names = [s.name for s in select_suites(table)]
    values = [v for n in names for v in paper_values(n)]
    if fmt == "csv":
        sys.stdout.write(to_csv(values))
        return
    emit(pd.DataFrame(values), fmt, "Values printed in the paper")


_WHAT, _HOW_MUCH, _WHERE, _SCALE = "What to run", "How much", "Where", "Scale"


@app.command()
@friendly
def run(
    suite: str = typer.Argument(..., help="Suite name, e.g. table5 (see `ba2m-bench suites`)."),
    profile: str = typer.Option(RunOptions.profile, "--profile", "-p",
                                help="paper, short, mini or smoke.",
                                rich_help_panel=_WHAT),
    only: str = typer.Option(None, "--only", help="Row filter, e.g. method=ba2m,setting=R=16.",
                             rich_help_panel=_WHAT),
    sets: list[str] = typer.Option(None, "--set", help="[FILTER:]KEY=VALUE config override, "
                                   "e.g. model.options.reduction=16 (repeatable).",
                                   rich_help_panel=_WHAT),
    dataset: str = typer.Option(None, "--dataset", help="Data provider instead of the suite's.",
                                rich_help_panel=_WHAT),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run FAILED jobs again.",
                                      rich_help_panel=_WHAT),
    add_methods: list[str] = typer.Option(None, "--add-method", help="Add a row per backbone "
                                          "for this attention method (name or "
                                          "pkg.module:Class; repeatable); see docs/extending.md.",
                                          rich_help_panel=_WHAT),
    plugins: list[str] = typer.Option(None, "--plugin", help="Import this module first, here "
                                      "and in every worker (repeatable; also BA2M_PLUGINS).",
                                      rich_help_panel=_WHAT),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the jobs; run nothing.",
                                 rich_help_panel=_WHAT),
    seeds: int = typer.Option(None, "--seeds", help="Seeds per row (paper: 5).",
                              rich_help_panel=_HOW_MUCH),
    epochs: int = typer.Option(None, "--epochs", help="Override the recipe's epochs.",
                               rich_help_panel=_HOW_MUCH),
    batch_size: int = typer.Option(None, "--batch-size", help="Override the batch size.",
                                   rich_help_panel=_HOW_MUCH),
    db: str = typer.Option(None, "--db", envvar="BA2M_DB", help="SQLAlchemy URL or SQLite path.",
                           rich_help_panel=_WHERE),
    results_dir: str = typer.Option(RunOptions.results_dir, "--results-dir",
                                    help="Checkpoints folder root.", rich_help_panel=_WHERE),
    data_root: str = typer.Option(None, "--data-root", help="Where the dataset lives.",
                                  rich_help_panel=_WHERE),
    download: bool = typer.Option(False, "--download", help="Download CIFAR if missing.",
                                  rich_help_panel=_WHERE),
    backend: str = typer.Option(RunOptions.backend, "--backend", help="local or ray.",
                                rich_help_panel=_SCALE),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster: auto or "
                                    "HOST:PORT (default: a local Ray).", rich_help_panel=_SCALE),
    gpus: str = typer.Option(None, "--gpus", help="This machine's GPUs for the local backend: "
                             "all (default), none, or ids like 0,1.", rich_help_panel=_SCALE),
    jobs_per_gpu: int = typer.Option(RunOptions.jobs_per_gpu, "--jobs-per-gpu",
                                     help="Concurrent jobs per GPU.", rich_help_panel=_SCALE),
    gpus_per_job: int = typer.Option(None, "--gpus-per-job",
                                     help="Data-parallel processes (GPUs) per job; default the "
                                     "recipe's (ImageNet 8, CIFAR 1; smoke 1). See "
                                     "docs/distributed.md.", rich_help_panel=_SCALE),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model (off "
                                       "by default).", rich_help_panel=_SCALE),
    no_progress: bool = typer.Option(False, "--no-progress", help="No live display."),
) -> None:
    """Run a suite's jobs (resumable: re-run the same command after a stop)."""
    from harness.execute.runner import plan, run_suite

    if gpus is not None and backend == "ray":
        raise UserError("--gpus chooses this machine's GPUs for --backend local; with --backend "
                        "ray the cluster places each job on its GPUs: leave out --gpus")
    given = {"gpus": gpus} if gpus is not None else {}
    opts = RunOptions(profile=profile, only=only, sets=tuple(sets or ()), dataset=dataset,
                      retry_failed=retry_failed, add_methods=tuple(add_methods or ()),
                      plugins=tuple(plugins or ()), seeds=seeds, epochs=epochs,
                      batch_size=batch_size, db_url=db, results_dir=results_dir,
                      data_root=data_root, download=download, backend=backend,
                      ray_address=ray_address, jobs_per_gpu=jobs_per_gpu,
                      gpus_per_job=gpus_per_job, compile=compile_model,
                      progress=not no_progress, **given)
    if dry_run:
        jobs = plan(suite, opts)
        frame = pd.DataFrame([{"label": j.label, "seed": j.seed, "config_hash": j.config_hash,
                               "epochs": j.config.get("train", {}).get("epochs"),
                               "runnable": j.unavailable or "yes"} for j in jobs])
        emit(frame, "table", f"{suite}: {len(jobs)} jobs ({profile} profile)")
        return
    summary = run_suite(suite, opts)
    failures, reasons = summary.pop("failures"), summary.pop("not_comparable")
    console.print(", ".join(f"{n} {s.lower()}" for s, n in summary.items()))
    if reasons:
        console.print(f"note: these numbers are NOT comparable with the paper's "
                      f"({'; '.join(reasons)}).", markup=False, highlight=False)
    for f in failures:
        console.print(f"FAILED {f['label']}: {f['reason']}", markup=False, highlight=False)
    unfinished = summary[JobStatus.PENDING] + summary[JobStatus.RUNNING]
    if unfinished:
        console.print(f"{unfinished} job(s) of this run unfinished (their workers stopped); "
                      "re-run the same command to resume them")
    if failures or unfinished:
        raise typer.Exit(1)


@app.command()
@friendly
def status(
    suite: str = typer.Argument(None, help="Suite name; all suites when omitted."),
    db: str = typer.Option(None, "--db", envvar="BA2M_DB", help="SQLAlchemy URL or SQLite path."),
    plugins: list[str] = typer.Option(None, "--plugin", help="Import this module first (for "
                                      "a suite it defines; repeatable; also BA2M_PLUGINS)."),
) -> None:
    """Jobs by status, and every failure with its reason."""
    from harness.plan.plugins import load_plugins
    from harness.store.db import ResultsDB

    load_plugins(tuple(plugins or ()))
    if suite is not None and suite not in suites.NAMES:
        raise UserError(str(suites.UnknownSuiteError(suite)))
    with ResultsDB(db, read_only=True) as rdb:
        counts = rdb.status_counts(suite)
        console.print(f"{suite or 'all suites'}: " + ", ".join(
            f"{n} {s.lower()}" for s, n in counts.items()))
        for f in rdb.failures(suite):
            console.print(f"FAILED {f['label']} [{f['config_hash']}] after {f['attempts']} "
                          f"attempt(s): {f['reason']}", markup=False, highlight=False)


@app.command()
@friendly
def bench(
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    arch: str = typer.Option("resnet50", "--arch", help="Architecture for the step timings."),
    dataset: str = typer.Option("cifar100", "--dataset", help="cifar100, cifar10 or imagenet."),
    batch: int = typer.Option(64, "--batch", help="Batch size of the step timings."),
    repeats: int = typer.Option(5, "--repeats", help="Timed repetitions (median is reported)."),
    parts: str = typer.Option("step,loop,pipeline,count,gpu", "--parts",
                              help="Comma-separated subset of step,loop,pipeline,count,gpu."),
    json_path: str = typer.Option(None, "--json", help="Also write the JSON here."),
) -> None:
    """Speed and memory of BA²M, the training loop and the data pipeline, side by side."""
    import torch

    from harness.bench import run_bench, save, summary_line

    if device not in ("cpu", "cuda"):
        raise UserError(f"unknown device {device!r}; choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but no CUDA GPU is visible; use --device cpu")
    chosen = tuple(p.strip() for p in parts.split(","))
    unknown = set(chosen) - {"step", "loop", "pipeline", "count", "gpu"}
    if unknown:
        raise UserError(f"unknown bench part(s) {sorted(unknown)}; choose from "
                        "step, loop, pipeline, count, gpu")
    if batch < 1 or repeats < 1:
        raise UserError("--batch and --repeats must be positive integers")
    console.print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    res = run_bench(device, arch, dataset, batch, repeats, chosen)
    for key, value in res.__dict__.items():
        if value not in (None, {}, "") and key not in ("created_at",):
            console.print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}",
                          highlight=False)
    path = save(res, path=json_path)
    console.print(f"written: {path}")
    console.print(summary_line(res), highlight=False)


@app.command()
@friendly
def report(
    names: list[str] = typer.Argument(None, help="Suites (table5, V, fig5, ...) or all."),
    fmt: list[str] = typer.Option(["markdown"], "--format", "-f",
                                  help="markdown, latex, csv or html (repeatable)."),
    out: str = typer.Option("reports", "--out", help="Folder for the report and figures."),
    db: str = typer.Option(None, "--db", envvar="BA2M_DB", help="SQLAlchemy URL or SQLite path."),
    costs: str = typer.Option("db", "--costs", help="db (the params/FLOPs `ba2m-bench count` "
                              "stored) or none."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the figures."),
    curves: str = typer.Option(None, "--curves", help="Also draw the training curves of a job "
                               "(its config hash or id)."),
    plugins: list[str] = typer.Option(None, "--plugin", help="Import this module first "
                                      "(repeatable; also BA2M_PLUGINS)."),
) -> None:
    """The paper's tables rebuilt from stored results, beside the paper's values (reads the
    database, writes only the report's files)."""
    from harness.plan.plugins import load_plugins
    from harness.report import generate_report, write_training_curves

    load_plugins(tuple(plugins or ()))
    _, paths = generate_report(names or None, fmt, out, db, costs, figures)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}", highlight=False)
    if curves:
        job = int(curves) if curves.isdigit() else curves
        for path in write_training_curves(job, out, db):
            console.print(f"curves: {path}", highlight=False)


@app.command()
@friendly
def audit(
    db: str = typer.Option(None, "--db", envvar="BA2M_DB", help="SQLAlchemy URL or SQLite path."),
    results_dir: str = typer.Option("results", "--results-dir", help="Checkpoints folder root."),
    suite: str = typer.Option(None, "--suite", help="Suite whose BA²M jobs to audit (default: "
                              "every suite that declares an audit)."),
    batch_sizes: str = typer.Option("1,2,4,8,16,32,64,128,256", "--batch-sizes",
                                    help="Test batch sizes, comma-separated."),
    data_root: str = typer.Option(None, "--data-root", help="Where the dataset lives."),
) -> None:
    """§III-D claims audit: test error of trained BA²M models at each test batch size, in both
    evaluation modes, with shuffled and class-sorted batches (stored for the report)."""
    # OpenMP threads that sleep when idle, as the runner's workers have (a busy machine's
    # audit otherwise runs several times slower); set it yourself to choose otherwise
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from harness.execute.audit import audited_suites, run_audit

    try:
        sizes = tuple(int(b) for b in batch_sizes.split(","))
    except ValueError:
        raise UserError(f"--batch-sizes {batch_sizes!r} is not a list like 1,2,4") from None
    if any(b < 1 for b in sizes):
        raise UserError("--batch-sizes must be positive integers")
    frame = run_audit(db, results_dir, suite, sizes, data_root=data_root)
    emit(frame, "table", f"Test error vs test batch size "
                         f"({suite or ', '.join(audited_suites())})")


db_app = typer.Typer(no_args_is_help=True, help="The results database.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@friendly
def db_upgrade(
    db: str = typer.Option(None, "--db", envvar="BA2M_DB", help="SQLAlchemy URL or SQLite path."),
) -> None:
    """Migrate a results database written by an older ba2m-bench to this one's schema."""
    from harness.store.migrations import upgrade

    found, now = upgrade(db)
    if found is None:
        console.print("no ba2m-bench results in this database; nothing to migrate")
    elif found == now:
        console.print(f"results database is at schema version {now}; nothing to do")
    else:
        console.print(f"results database migrated from schema version {found} to {now}")


def _print_cost_table(frame: pd.DataFrame, title: str) -> None:
    """Compact terminal view: one line per row, reasons as numbered notes below."""
    notes: dict[str, int] = {}
    table = Table(title=title)
    for col in ("table", "backbone", "method", "setting", "params M", "paper", "Δ%",
                "FLOPs G", "paper", "Δ%", "fvcore G", "status", "note"):
        table.add_column(col, justify="right" if col[0] in "pPΔFf" else "left")
    style = {"match": "green", "deviation": "yellow", "mismatch": "bold red"}
    for r in frame.itertuples(index=False):
        note = notes.setdefault(r.reason, len(notes) + 1) if r.reason else ""
        table.add_row(
            r.table, r.backbone, r.method, r.setting, _num(r.params_m), _num(r.paper_params_m),
            _num(r.params_diff_pct, 1), _num(r.flops_g, 3), _num(r.paper_flops_g),
            _num(r.flops_diff_pct, 1), _num(r.fvcore_total_g, 3),
            f"[{style.get(r.status, 'dim')}]{r.status}[/]", str(note),
        )
    console.print(table)
    for reason, i in notes.items():
        console.print(f"[{i}] {reason}", highlight=False, markup=False)
    if len(frame):
        uncounted = sorted({u for u in frame["uncounted"] if u})
        console.print("operators fvcore could not count: " + ("; ".join(uncounted) or "none"))


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def main() -> None:
    """Entry point for ``python -m harness``."""
    app()
