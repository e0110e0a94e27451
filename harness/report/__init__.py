"""Reports: the paper's tables rebuilt from stored results, side by side with its values.

A report only reads the database (opened read-only) and writes files: params/FLOPs are those
``ba2m-bench count`` stored, the §III-D audit is what ``ba2m-bench audit`` stored.

Entry points for the command line:

* :func:`generate_report` - build and write a report (markdown, latex, csv, html).
* :func:`consistency_flags` / :func:`flags_frame` - the paper's own inconsistencies.
* :func:`write_training_curves` - loss/error/lr curves of one job.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.errors import UserError
from harness.report.build import Report, build_report, resolve_names
from harness.report.consistency import Flag, consistency_flags, flags_frame
from harness.report.render import FORMATS, write_report, write_training_curves


def generate_report(names: Sequence[str] | None = None, formats: Sequence[str] = ("markdown",),
                    out_dir: str | Path = "reports", db_url: str | None = None,
                    costs: str = "db", figures: bool = True) -> tuple[Report, dict[str, Path]]:
    """Build the report of ``names`` (suite names, roman numerals or "all"; None = all) from
    the database and write it in each format under ``out_dir``; returns the report and
    format -> written file."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown report format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    try:  # before anything is read: a bad --out must change nothing
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write reports to {out_dir} ({exc.strerror or exc}); "
                        "choose a writable folder with --out") from None
    report = build_report(names, db_url=db_url, costs=costs)
    return report, write_report(report, formats, out_dir, figures=figures)


__all__ = ["FORMATS", "Flag", "Report", "build_report", "consistency_flags", "flags_frame",
           "generate_report", "resolve_names", "write_report", "write_training_curves"]
