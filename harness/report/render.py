"""Write a :class:`~harness.report.build.Report` as Markdown, LaTeX, CSV or one HTML page.

Files under ``out_dir``: ``report.md`` (tables, figure links), ``report.tex`` (a tabular per
table), ``report.csv`` (long form; with ``gains.csv``, ``flags.csv``, ``audit.csv``),
``report.html`` (self-contained: figures embedded as base64 PNG) and ``figures/*.png|svg``.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

import suites
from harness.store.db import ResultsDB
from harness.errors import UserError
from harness.paths import inside
import harness.report.figures as F
from harness.report.audit import audit_summary
from harness.report.build import Report, SuiteReport
from harness.report.consistency import INCONSISTENCY, flags_frame
from harness.report.gains import gain_text, gains_display
from harness.report.stats import DETECTION_RULE, RULE, weight_shares
from harness.report.tables import METRIC_LABELS, display_frame, main_metric, rule_text

FORMATS = ("markdown", "latex", "csv", "html")
EXTENSIONS = {"markdown": "md", "latex": "tex", "csv": "csv", "html": "html"}
_STATUS_CLASS = (("reproduced", "ok"), ("differs", "bad"), ("pending", "pend"),
                 ("unavailable", "na"), ("not comparable", "nc"), ("no paper value", "na"),
                 ("variant", "nc"))


@dataclass(frozen=True)
class FigureFile:
    """One written figure."""

    suite: str
    stem: str
    title: str
    png: Path
    svg: Path
    wide: bool = False  # shown at full page width


# ------------------------------------------------------------------------------ figures
def suite_figures(sr: SuiteReport) -> list[tuple[str, str, Figure]]:
    """(file stem, caption, figure) of every figure the suite gets: those it declares, then
    the paper-vs-reproduced scatter, training curves and BA²M weight shares where it has
    results."""
    s, rows, name = sr.suite, sr.rows, sr.suite.name
    title = short_name(s.table)
    out: list[tuple[str, str, Figure]] = []
    for spec in s.figures:
        out.append((f"{name}-{spec.kind}", f"{title}: {spec.caption}",
                    F.declared_figure(spec, f"{title}: {spec.title}", rows, sr.audit)))
    metric = main_metric(s)
    if metric and any(metric in r.row.paper and math.isfinite(r.reproduced(metric))
                      for r in rows):
        what = "error" if s.task == "classification" else METRIC_LABELS[metric]
        out.append((f"{name}-scatter", f"{title}: paper vs reproduced",
                    F.scatter_figure(rows, f"{title}: paper vs reproduced {what}")))
    if sr.curves and s.task == "classification":  # the curves draw top-1 error per epoch
        out.append((f"{name}-curves", f"{title}: training curves (first seed per row)",
                    F.training_curves_figure(sr.curves, f"{title}: training curves")))
    if any(weight_shares(ep) for ep in sr.curves.values()):
        out.append((f"{name}-weight-share", f"{title}: BA²M batch-weight concentration",
                    F.weight_share_figure(sr.curves, f"{title}: largest share of one sample's "
                                          "BA²M weight (collapse diagnostic)")))
    return out


def make_figures(report: Report, out_dir: str | Path) -> dict[str, list[FigureFile]]:
    """Write every figure under ``out_dir/figures``; suite name -> files."""
    fig_dir = Path(out_dir) / "figures"
    out: dict[str, list[FigureFile]] = {}
    for sr in report.suites:
        files = []
        for stem, title, fig in suite_figures(sr):
            png, svg = F.save_figure(fig, fig_dir, stem)
            files.append(FigureFile(sr.name, stem, title, png, svg, fig.get_figwidth() > 8))
        out[sr.name] = files
    return out


def write_training_curves(job: int | str, out_dir: str | Path = "reports",
                          db_url: str | None = None) -> tuple[Path, ...]:
    """Training curves (loss, error, lr vs epoch) of one job, by id or config hash, and, where
    it recorded BA²M weight shares, its weight-share figure (PNG and SVG of each)."""
    with ResultsDB(db_url, read_only=True) as db:
        ep = db.epochs_frame(job)
    if ep.empty:
        raise UserError(f"job {job} has no recorded epochs; see `ba2m-bench status`")
    fig_dir = Path(out_dir) / "figures"
    curves = {f"job {job}": ep}
    paths = F.save_figure(F.training_curves_figure(curves, f"Training curves of job {job}"),
                          fig_dir, f"curves-{job}")
    if weight_shares(ep):
        title = f"Largest share of one sample's BA²M weight, job {job}"
        paths += F.save_figure(F.weight_share_figure(curves, title), fig_dir,
                               f"weight-share-{job}")
    return paths


# ----------------------------------------------------------------------------- helpers
def _flat(col: object) -> str:
    if isinstance(col, tuple):
        group, sub = col
        return sub if group in ("Row", "Status") else f"{group} {sub}"
    return str(col)


def short_name(table: str) -> str:
    """"V" -> "Table V", "III-D" -> "§III-D"; any other numbering ("Fig. 5", "He et al.
    2016") as is."""
    if table == "III-D":
        return "§III-D"
    return f"Table {table}" if suites.roman_value(table) is not None else table


def _title(sr: SuiteReport) -> str:
    return f"{short_name(sr.suite.table)}: {sr.suite.title} ({sr.suite.name})"


def _runnable(sr: SuiteReport) -> bool:
    return any(r.status != "unavailable" for r in sr.rows)


def _notes(sr: SuiteReport) -> list[str]:
    out = []
    if any(r.row.inferred for r in sr.rows):
        out.append("* row identity inferred (the paper's check-mark columns were lost).")
    if sr.suite.notes:
        out.append(sr.suite.notes)
    return out


def _header(report: Report) -> list[tuple[str, str]]:
    out = [("generated", report.generated_at), ("database", report.database),
           ("database content hash", report.content_hash[:16]),
           ("params/FLOPs", {"db": "as stored by ba2m-bench count",
                             "none": "not shown"}[report.costs]),
           ("status rule", RULE)]
    if any(sr.suite.task == "detection" for sr in report.suites):
        out.append(("status rule (detection)", DETECTION_RULE))
    return out


# ----------------------------------------------------------------------------- markdown
def md_table(frame: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (two-level columns flattened)."""
    if frame.empty:
        return "_(empty)_"
    cols = [_flat(c) for c in frame.columns]
    esc = [[str(v).replace("|", "\\|").replace("\n", " ") for v in row]
           for row in frame.astype(str).itertuples(index=False)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc]
    return "\n".join(lines)


def render_markdown(report: Report, figs: dict[str, list[FigureFile]], out_dir: Path) -> str:
    out = ["# BA²M reproduction report", ""]
    if report.banner:
        out += [f"> **{report.banner}**", ""]
    out += [f"- **{k}**: {v}" for k, v in _header(report)] + [""]
    for sr in report.suites:
        out += [f"## {_title(sr)}", ""]
        if sr.banner:
            out += [f"> **{sr.banner}**", ""]
        out += [f"- {m}" for m in sr.messages] + ([""] if sr.messages else [])
        out += ([rule_text(sr.suite), ""] if _runnable(sr) else [])
        out += [md_table(display_frame(sr.rows, sr.variants)), ""]
        out += [f"_{n}_" for n in _notes(sr)] + [""]
        if not sr.gains.empty:
            out += [f"**Gains over the baseline** ({gain_text(sr.suite)}; Welch 95% CI over "
                    "seeds)", "", md_table(gains_display(sr.gains)), ""]
        if not sr.audit.empty:
            paper = next((r.row.paper.get("top1_err") for r in sr.rows), None)
            out += ["**§III-D audit** (top-1 error by test batch size)", "",
                    md_table(audit_summary(sr.audit, paper)), ""]
        out += ["**Provenance**", ""] + [f"- {k}: {v}" for k, v in sr.provenance.items()] + [""]
        for f in figs.get(sr.name, []):
            rel = f.png.relative_to(out_dir).as_posix()
            out += [f"![{f.title}]({rel}) ([SVG]({f.svg.relative_to(out_dir).as_posix()}))", ""]
    out += ["## The paper's own inconsistencies", ""]
    out += _md_flags(report)
    return "\n".join(out) + "\n"


def _md_flags(report: Report) -> list[str]:
    if not report.flags:
        return ["_none involving these tables_"]
    out = []
    for f in report.flags:
        tag = "inconsistency" if f.severity == INCONSISTENCY else "note"
        out.append(f"- **{f.kind}** ({tag}; Tables {', '.join(f.tables)}): {f.message}")
        cells = "; ".join(map(str, f.cells[:12])) + (" …" if len(f.cells) > 12 else "")
        out.append(f"  - cells: {cells}")
    return out


# -------------------------------------------------------------------------------- LaTeX
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
        "²": r"$^2$", "Δ": r"$\Delta$", "±": r"$\pm$", "§": r"\S{}", "−": "-", "…": r"\dots{}",
        "—": "--", "·": r"$\cdot$", "≤": r"$\le$", ">": r"$>$", "<": r"$<$",
        "↳": r"$\hookrightarrow$"}


def tex(text: object) -> str:
    """``text`` escaped for LaTeX."""
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def latex_tabular(frame: pd.DataFrame) -> str:
    """A tabular with a grouped header row for two-level columns."""
    if frame.empty:
        return "(empty)"
    cols = list(frame.columns)
    align = "".join("l" if isinstance(c, tuple) and c[0] in ("Row", "Status") or
                    not isinstance(c, tuple) and i < 3 else "r" for i, c in enumerate(cols))
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\hline"]
    if isinstance(frame.columns, pd.MultiIndex):
        groups: list[tuple[str, int]] = []
        for c in cols:
            if groups and groups[-1][0] == c[0]:
                groups[-1] = (c[0], groups[-1][1] + 1)
            else:
                groups.append((c[0], 1))
        lines.append(" & ".join(rf"\multicolumn{{{n}}}{{c}}{{{tex(g)}}}" for g, n in groups)
                     + r" \\")
        lines.append(" & ".join(tex(c[1]) for c in cols) + r" \\ \hline")
    else:
        lines.append(" & ".join(tex(c) for c in cols) + r" \\ \hline")
    for row in frame.astype(str).itertuples(index=False):
        lines.append(" & ".join(tex(v) for v in row) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines)


def render_latex(report: Report, figs: dict[str, list[FigureFile]], out_dir: Path) -> str:
    out = [r"\documentclass[10pt]{article}", r"\usepackage[T1]{fontenc}",
           r"\usepackage[utf8]{inputenc}", r"\usepackage[margin=1.5cm,landscape]{geometry}",
           r"\usepackage{graphicx}", r"\begin{document}",
           r"\section*{BA$^2$M reproduction report}"]
    if report.banner:
        out.append(rf"\noindent\fbox{{\parbox{{\linewidth}}{{\textbf{{{tex(report.banner)}}}}}}}")
    out += [r"\begin{itemize}"] + [rf"\item \textbf{{{tex(k)}}}: {tex(v)}"
                                    for k, v in _header(report)] + [r"\end{itemize}"]
    for sr in report.suites:
        out.append(rf"\subsection*{{{tex(_title(sr))}}}")
        if sr.banner:
            out.append(rf"\noindent\textbf{{{tex(sr.banner)}}}\par")
        for m in sr.messages:
            out.append(rf"\noindent {tex(m)}\par")
        caption = rule_text(sr.suite) if _runnable(sr) else "Paper values (not runnable yet)"
        out += [r"\begin{table}[h]\centering", rf"\caption{{{tex(caption)}}}",
                r"\resizebox{\textwidth}{!}{%",
                latex_tabular(display_frame(sr.rows, sr.variants)) + "}",
                r"\end{table}"]
        if not sr.gains.empty:
            out += [r"\begin{table}[h]\centering",
                    rf"\caption{{Gains over the baseline ({tex(gain_text(sr.suite))}; "
                    r"Welch 95\% CI)}",
                    r"\resizebox{\textwidth}{!}{%", latex_tabular(gains_display(sr.gains)) + "}",
                    r"\end{table}"]
        if not sr.audit.empty:
            paper = next((r.row.paper.get("top1_err") for r in sr.rows), None)
            out += [r"\begin{table}[h]\centering", r"\caption{\S{}III-D audit}",
                    r"\resizebox{\textwidth}{!}{%",
                    latex_tabular(audit_summary(sr.audit, paper)) + "}", r"\end{table}"]
        out += [r"\paragraph{Provenance}", r"\begin{itemize}"]
        out += [rf"\item {tex(k)}: {tex(v)}" for k, v in sr.provenance.items()]
        out.append(r"\end{itemize}")
        for f in figs.get(sr.name, []):
            rel = f.png.relative_to(out_dir).as_posix()
            out += [r"\begin{figure}[h]\centering",
                    rf"\includegraphics[width=0.7\textwidth]{{{rel}}}",
                    rf"\caption{{{tex(f.title)}}}", r"\end{figure}"]
        out.append(r"\clearpage")
    out += [r"\subsection*{The paper's own inconsistencies}", r"\begin{itemize}"]
    out += [rf"\item \textbf{{{tex(f.kind)}}} ({tex(f.severity)}): {tex(f.message)}"
            for f in report.flags] or [r"\item none"]
    out += [r"\end{itemize}", r"\end{document}"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------- CSV
def report_frames(report: Report) -> dict[str, pd.DataFrame]:
    """The CSV exports: long-form results, gains, flags, audit points."""
    long = [sr.long() for sr in report.suites]
    gains = [sr.gains for sr in report.suites if not sr.gains.empty]
    audits = [sr.audit.assign(table=sr.suite.table) for sr in report.suites
              if not sr.audit.empty]
    return {
        "report": pd.concat(long, ignore_index=True) if long else pd.DataFrame(),
        "gains": pd.concat(gains, ignore_index=True) if gains else pd.DataFrame(),
        "flags": flags_frame(report.flags),
        "audit": pd.concat(audits, ignore_index=True) if audits else pd.DataFrame(),
    }


# --------------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1500px;padding:0 16px;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:2.2em;
border-bottom:2px solid #1f4e79;padding-bottom:4px}
.banner{background:#fde7e9;border:2px solid #b00020;color:#7a0016;padding:10px 14px;
font-weight:600;margin:12px 0;border-radius:4px}
.msg{background:#fff7e0;border-left:4px solid #e0a800;padding:6px 10px;margin:6px 0}
.wrap{overflow-x:auto;margin:8px 0}
table{border-collapse:collapse;font-size:12px;margin:4px 0}
th,td{border:1px solid #c9cdd2;padding:2px 5px;text-align:right;white-space:nowrap}
th{background:#eef2f6} td.l,th.l{text-align:left} th.g{text-align:center}
tr:nth-child(even) td{background:#fafbfc}
td.ok{background:#e3f4e1!important;color:#1d6b1d} td.bad{background:#fde2e2!important;color:#9b1c1c}
td.pend{background:#fff4d6!important;color:#7a5a00} td.na{color:#6b7280}
td.nc{background:#efe7fb!important;color:#5b2a86}
.rule,.note{font-size:12.5px;color:#444;max-width:1100px}
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:12.5px;
margin:6px 0} dl.prov dt{font-weight:600;color:#333} dl.prov dd{margin:0;word-break:break-word}
.figs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:6px 0;flex:0 1 calc(50% - 7px);min-width:320px}
figure.wide{flex-basis:100%}
figure img{width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:12px;color:#555}
.flags li{margin:6px 0} .flags .cells{font-size:11.5px;color:#555}
.sev-inconsistency{color:#9b1c1c;font-weight:600} .sev-note{color:#555;font-weight:600}
nav ul{columns:3;font-size:13px}
"""


def _cell_class(text: str) -> str:
    return next((c for key, c in _STATUS_CLASS if text.startswith(key)), "")


def html_table(frame: pd.DataFrame, status_cols: Iterable[object] = ()) -> str:
    """A table; two-level columns get a grouped header; ``status_cols`` are coloured."""
    if frame.empty:
        return "<p><em>(empty)</em></p>"
    status = set(status_cols)
    cols = list(frame.columns)
    multi = isinstance(frame.columns, pd.MultiIndex)
    left = {c for i, c in enumerate(cols)
            if (multi and c[0] in ("Row", "Status")) or (not multi and i < 3)}
    head = []
    if multi:
        groups: list[list] = []
        for c in cols:
            if groups and groups[-1][0] == c[0]:
                groups[-1][1] += 1
            else:
                groups.append([c[0], 1])
        head.append("<tr>" + "".join(f'<th class="g" colspan="{n}">{html.escape(str(g))}</th>'
                                     for g, n in groups) + "</tr>")
        head.append("<tr>" + "".join(f'<th class="{"l" if c in left else ""}">'
                                     f"{html.escape(str(c[1]))}</th>" for c in cols) + "</tr>")
    else:
        head.append("<tr>" + "".join(f'<th class="{"l" if c in left else ""}">'
                                     f"{html.escape(str(c))}</th>" for c in cols) + "</tr>")
    body = []
    for row in frame.astype(str).itertuples(index=False):
        cells = []
        for c, v in zip(cols, row):
            cls = ("l " if c in left else "") + (_cell_class(v) if c in status else "")
            cells.append(f'<td class="{cls.strip()}">{html.escape(v)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ('<div class="wrap"><table><thead>' + "".join(head) + "</thead><tbody>"
            + "".join(body) + "</tbody></table></div>")


def _anchor(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", name.lower())


def render_html(report: Report, figs: dict[str, list[FigureFile]], out_dir: Path) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>BA²M reproduction report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>BA²M reproduction report</h1>"]
    if report.banner:
        parts.append(f'<div class="banner">{e(report.banner)}</div>')
    parts.append('<dl class="prov">' + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>"
                                             for k, v in _header(report)) + "</dl>")
    parts.append("<nav><ul>" + "".join(
        f'<li><a href="#{_anchor(sr.name)}">{e(_title(sr))}</a></li>' for sr in report.suites)
        + '<li><a href="#flags">The paper\'s own inconsistencies</a></li></ul></nav>')
    for sr in report.suites:
        parts.append(f'<h2 id="{_anchor(sr.name)}">{e(_title(sr))}</h2>')
        if sr.banner:
            parts.append(f'<div class="banner">{e(sr.banner)}</div>')
        parts += [f'<div class="msg">{e(m)}</div>' for m in sr.messages]
        if _runnable(sr):
            parts.append(f'<p class="rule">{e(rule_text(sr.suite))}</p>')
        frame = display_frame(sr.rows, sr.variants)
        parts.append(html_table(frame, [c for c in frame.columns if _flat(c) == "status"]))
        parts += [f'<p class="note">{e(n)}</p>' for n in _notes(sr)]
        if not sr.gains.empty:
            parts.append(f"<h3>Gains over the baseline</h3><p class='note'>"
                         f"{e(gain_text(sr.suite))} (positive: the method helps), Welch t 95% "
                         "interval over seeds.</p>")
            parts.append(html_table(gains_display(sr.gains)))
        if not sr.audit.empty:
            paper = next((r.row.paper.get("top1_err") for r in sr.rows), None)
            parts.append("<h3>§III-D audit: top-1 error by test batch size</h3>")
            parts.append(html_table(audit_summary(sr.audit, paper)))
        parts.append("<h3>Provenance</h3><dl class='prov'>" + "".join(
            f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in sr.provenance.items()) + "</dl>")
        if figs.get(sr.name):
            parts.append('<div class="figs">')
            for f in figs[sr.name]:
                data = base64.b64encode(f.png.read_bytes()).decode("ascii")
                wide = ' class="wide"' if f.wide else ""
                parts.append(f'<figure{wide}><img alt="{e(f.title)}" '
                             f'src="data:image/png;base64,{data}">'
                             f"<figcaption>{e(f.title)}</figcaption></figure>")
            parts.append("</div>")
    parts.append('<h2 id="flags">The paper\'s own inconsistencies</h2><ul class="flags">')
    for f in report.flags:
        cells = "; ".join(map(str, f.cells[:16])) + (" …" if len(f.cells) > 16 else "")
        parts.append(f'<li><span class="sev-{f.severity}">{e(f.kind)}</span> '
                     f"(Tables {e(', '.join(f.tables))}): {e(f.message)}"
                     f'<div class="cells">cells: {e(cells)}</div></li>')
    if not report.flags:
        parts.append("<li>none involving these tables</li>")
    parts += ["</ul>", "</body></html>"]
    return "\n".join(parts) + "\n"


# -------------------------------------------------------------------------------- write
_RENDERERS: dict[str, Callable[[Report, dict[str, list[FigureFile]], Path], str]] = {
    "markdown": render_markdown, "latex": render_latex, "html": render_html}


def write_report(report: Report, formats: Sequence[str] = ("markdown",),
                 out_dir: str | Path = "reports", figures: bool = True) -> dict[str, Path]:
    """Write ``report`` in each format; returns format -> main file (figures under
    ``out_dir/figures``)."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown report format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = make_figures(report, out) if figures and set(formats) - {"csv"} else {}
    written: dict[str, Path] = {}
    for fmt in formats:
        path = inside(out, f"report.{EXTENSIONS[fmt]}")
        if fmt == "csv":
            for stem, frame in report_frames(report).items():
                if stem == "report" or not frame.empty:
                    frame.to_csv(inside(out, f"{stem}.csv"), index=False)
        else:
            path.write_text(_RENDERERS[fmt](report, figs, out), encoding="utf-8")
        written[fmt] = path
    return written
