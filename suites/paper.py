"""The paper's printed values in long form: one record per (table, row, metric).

Used to compare results with the paper and to export the transcription as CSV.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import suites

if TYPE_CHECKING:
    import pandas as pd

#: Keys of each record, in order.
FIELDS = ("table", "dataset", "backbone", "method", "setting", "metric", "value", "inferred")
#: Columns of the CSV export (``inferred`` is left out).
CSV_FIELDS = FIELDS[:-1]


def _selected(table: str | None) -> list[suites.Suite]:
    """All suites, or the one whose paper numbering or CLI name is ``table``."""
    every = suites.all_suites()
    if table is None:
        return every
    chosen = [s for s in every if table in (s.table, s.name)]
    if not chosen:
        raise suites.UnknownSuiteError(table)
    return chosen


def paper_values(table: str | None = None) -> list[dict[str, Any]]:
    """Every declared paper value, in paper order, rows as declared, metrics in column order.

    ``table`` filters by the paper's numbering ("V", "Fig. 5", "III-D") or the suite name
    ("table5", "fig5", "infer-batch").
    """
    out: list[dict[str, Any]] = []
    for suite in _selected(table):
        for row in suite.rows:
            for metric in suite.metrics:
                if metric in row.paper:
                    out.append({
                        "table": suite.table,
                        "dataset": suite.dataset,
                        "backbone": row.backbone,
                        "method": row.method,
                        "setting": row.setting,
                        "metric": metric,
                        "value": row.paper[metric],
                        "inferred": row.inferred,
                    })
    return out


def paper_frame(table: str | None = None) -> pd.DataFrame:
    """:func:`paper_values` as a DataFrame with columns :data:`FIELDS`."""
    import pandas as pd

    return pd.DataFrame(paper_values(table), columns=list(FIELDS))


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text with header ``table,dataset,backbone,method,setting,metric,value``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
