"""The paper's own inconsistencies, found in its declared values (``suites``), not hidden.

Every flag names the cells involved. Kinds:

* ``cheaper-than-baseline``: a method row printed with fewer params or FLOPs than its baseline.
* ``identical-costs``: different methods on one backbone printed with the same params and FLOPs.
* ``ba2m-increment``: BA²M's printed parameter increment differs between backbones whose
  stages have the same output widths (BA²M sits after each stage, so it should cost the same).
* ``repeated-rows``: the same model reported in two tables, values identical (a note) or
  different (an inconsistency).
* ``coincident-values``: different models printed with identical error (and std) values.
* ``worse-than-baseline``: a method row worse than its baseline while the text presents the
  methods as improvements.
* ``text-claim``: a sentence of the text that the tables contradict (§III-D, gains vs depth,
  "without increasing the amount of calculation").
* ``inferred-rows``: rows whose identity is inferred (Tables IX and XIII lost their check marks).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

import suites as suite_registry
from harness.plan.spec import NotAvailableError, model_spec
from harness.report.gains import baseline_for
from harness.report.tables import higher_is_better
from suites.base import Row, Suite

INCONSISTENCY, NOTE = "inconsistency", "note"
ERRORS = ("err", "top1_err", "top5_err")
#: Printed increments closer than this (M params) count as equal (two-decimal rounding).
INCREMENT_SLACK = 0.05
#: Methods that replace convolutions with attention (fewer params can be genuine).
REPLACING_METHODS = frozenset({"sasa", "aa"})
_METHOD_NAMES = {"ba2m": "BA²M", "focal-loss": "Focal Loss", "baseline": "baseline"}


@dataclass(frozen=True)
class Cell:
    """One printed value."""

    table: str
    backbone: str
    method: str
    setting: str
    metric: str
    value: float

    def __str__(self) -> str:
        where = " / ".join(p for p in (self.backbone, method_name(self.method), self.setting) if p)
        return f"{self.table}: {where}: {self.metric}={self.value:g}"


@dataclass(frozen=True)
class Flag:
    """One inconsistency (or note) with the cells it involves."""

    kind: str
    tables: tuple[str, ...]
    cells: tuple[Cell, ...]
    message: str
    severity: str = INCONSISTENCY


def method_name(method: str) -> str:
    """"se+ba2m" -> "SE+BA²M"."""
    return "+".join(_METHOD_NAMES.get(m, m.upper()) for m in method.split("+"))


def _cell(suite: Suite, row: Row, metric: str) -> Cell:
    return Cell(suite.table, row.backbone, row.method, row.setting, metric, row.paper[metric])


def _who(row: Row) -> str:
    return _describe(row.backbone, row.method, row.setting)


def _describe(backbone: str, method: str, setting: str) -> str:
    name = backbone if method == "baseline" else f"{backbone} + {method_name(method)}"
    return f"{name} ({setting})" if setting else name


# ------------------------------------------------------------------------------- checks
def cheaper_than_baseline(all_suites: Sequence[Suite]) -> list[Flag]:
    out = []
    for s in all_suites:
        for row in s.rows:
            base = baseline_for(s, row)
            if base is None:
                continue
            lower = [m for m in ("params_m", "flops_g")
                     if m in row.paper and m in base.paper and row.paper[m] < base.paper[m]]
            if not lower:
                continue
            what = " and ".join(
                f"{'params' if m == 'params_m' else 'FLOPs'} ({row.paper[m]:g} < {base.paper[m]:g})"
                for m in lower)
            cells = [_cell(s, row, m) for m in lower] + [_cell(s, base, m) for m in lower]
            if row.method in REPLACING_METHODS:
                out.append(Flag("cheaper-than-baseline", (s.table,), tuple(cells),
                                f"Table {s.table}: {_who(row)} is printed with fewer {what} "
                                f"than {_who(base)}; {method_name(row.method)} replaces "
                                "convolutions with attention, so this can be genuine.", NOTE))
                continue
            out.append(Flag("cheaper-than-baseline", (s.table,), tuple(cells),
                            f"Table {s.table}: {_who(row)} is printed with fewer {what} than "
                            f"{_who(base)}; adding a module cannot remove parameters or "
                            "computation."))
    return out


def identical_costs(all_suites: Sequence[Suite]) -> list[Flag]:
    out = []
    for s in all_suites:
        groups: dict[tuple, list[Row]] = defaultdict(list)
        for row in s.rows:
            if "params_m" in row.paper and "flops_g" in row.paper and row.method != "baseline":
                groups[(row.backbone, row.setting, row.paper["params_m"],
                        row.paper["flops_g"])].append(row)
        for (backbone, _, params, flops), rows in groups.items():
            if len({r.method for r in rows}) < 2:
                continue
            names = " and ".join(method_name(r.method) for r in rows)
            cells = [_cell(s, r, m) for r in rows for m in ("params_m", "flops_g")]
            out.append(Flag("identical-costs", (s.table,), tuple(cells),
                            f"Table {s.table}: {backbone} + {names} are printed with identical "
                            f"params and FLOPs ({params:g} M, {flops:g} G) although the "
                            "modules differ (for SE and CBAM the spatial attention's cost may be "
                            "lost in rounding)."))
    return out


def stage_widths(form: str, arch: str | None) -> tuple[int, ...] | None:
    """Output widths of the stages of ``arch`` (None where the zoo does not say)."""
    from models.registry import CIFAR_RESNETS, IMAGENET_RESNETS

    spec = (IMAGENET_RESNETS if form == "imagenet" else CIFAR_RESNETS).get(arch or "")
    if spec is None:
        return None
    return tuple(w * spec.block.expansion for w in spec.widths)


def ba2m_increments(all_suites: Sequence[Suite]) -> list[Flag]:
    """BA²M's printed param increment per backbone, compared across equal stage widths."""
    seen: dict[tuple, tuple[Suite, Row, Row, float]] = {}
    for s in all_suites:
        for row in s.rows:
            if row.method != "ba2m" or row.setting or "params_m" not in row.paper:
                continue
            base = baseline_for(s, row)
            if base is None or "params_m" not in base.paper:
                continue
            inc = round(row.paper["params_m"] - base.paper["params_m"], 2)
            seen.setdefault((s.form, row.arch, inc), (s, row, base, inc))
    by_width: dict[tuple[int, ...], list[tuple[Suite, Row, Row, float]]] = defaultdict(list)
    for (form, arch, _), item in seen.items():
        widths = stage_widths(form, arch)
        if widths is not None:
            by_width[widths].append(item)
    out = []
    for widths, items in by_width.items():
        incs = [i[3] for i in items]
        if max(incs) - min(incs) <= INCREMENT_SLACK:
            continue
        parts = "; ".join(f"{s.dataset} {r.backbone} {inc:+.2f} M (Table {s.table})"
                          for s, r, _, inc in items)
        cells = [c for s, r, b, _ in items for c in (_cell(s, r, "params_m"),
                                                     _cell(s, b, "params_m"))]
        tables = tuple(sorted({i[0].table for i in items}, key=_table_order))
        out.append(Flag("ba2m-increment", tables, tuple(cells),
                        f"BA²M (one module after each stage) adds different parameters to "
                        f"backbones with the same stage widths {widths}: {parts}."))
    return out


def _identity(s: Suite, row: Row) -> tuple:
    """What makes two rows the same model (and recipe) across tables."""
    if s.task != "classification":
        return (s.dataset, s.task, row.backbone, row.method, row.setting)
    try:
        spec = model_spec(s, row)
        return (s.dataset, spec.hash(), repr(sorted(row.train.items())))
    except (NotAvailableError, ValueError):
        return (s.dataset, s.task, row.backbone, row.method, row.setting)


def repeated_rows(all_suites: Sequence[Suite]) -> list[Flag]:
    """One model in several tables: values that differ (an inconsistency per pair of tables)
    and values that coincide (one note per set of tables sharing rows)."""
    groups: dict[tuple, list[tuple[Suite, Row]]] = defaultdict(list)
    for s in all_suites:
        for row in s.rows:
            if row.paper:
                groups[_identity(s, row)].append((s, row))
    differ: dict[tuple[str, str], list[tuple[Cell, Cell]]] = defaultdict(list)
    same: dict[tuple[str, ...], list[tuple[Row, list[Cell]]]] = defaultdict(list)
    for members in groups.values():
        members = sorted(members, key=lambda x: _table_order(x[0].table))
        tables = tuple(dict.fromkeys(s.table for s, _ in members))
        if len(tables) < 2:
            continue
        shared = False
        for (s1, r1), (s2, r2) in itertools.combinations(members, 2):
            for m in (m for m in r1.paper if m in r2.paper and s1.table != s2.table):
                shared = True
                if r1.paper[m] != r2.paper[m]:
                    differ[(s1.table, s2.table)].append((_cell(s1, r1, m), _cell(s2, r2, m)))
        if not shared:
            continue  # e.g. XV (box AP) and XVI (mask AP): same models, no common column
        cells = [_cell(s, r, m) for s, r in members for m in r.paper]
        same[tables].append((members[0][1], cells))
    out = []
    for (ta, tb), pairs in differ.items():
        desc = "; ".join(f"{_who_cell(a)} {a.metric}: {a.value:g} vs {b.value:g}"
                         for a, b in pairs)
        out.append(Flag("repeated-rows", (ta, tb), tuple(c for p in pairs for c in p),
                        f"Tables {ta} and {tb} report the same model with different values: "
                        f"{desc}."))
    for tables, rows in same.items():
        names = ", ".join(_who(r) for r, _ in rows)
        listed = " and ".join([", ".join(tables[:-1]), tables[-1]])
        out.append(Flag("repeated-rows", tables, tuple(c for _, cs in rows for c in cs),
                        f"Tables {listed} print the same model(s) ({len(rows)} row(s): "
                        f"{names}); repeated values agree unless flagged separately.", NOTE))
    return out


def _who_cell(c: Cell) -> str:
    return _describe(c.backbone, c.method, c.setting)


def coincident_values(all_suites: Sequence[Suite]) -> list[Flag]:
    """Different models with identical error values: all shared error/std cells equal (at
    least one within a table, at least two across tables)."""
    rows = [(s, r, _identity(s, r)) for s in all_suites for r in s.rows
            if any(m in r.paper for m in (*ERRORS, "std"))]
    out = []
    for (s1, r1, i1), (s2, r2, i2) in itertools.combinations(rows, 2):
        if i1 == i2 or s1.dataset != s2.dataset:
            continue
        shared = [m for m in (*ERRORS, "std") if m in r1.paper and m in r2.paper]
        need = 1 if s1.table == s2.table else 2
        if len(shared) < need or any(r1.paper[m] != r2.paper[m] for m in shared):
            continue
        if s1.table == s2.table and (r1.method != r2.method or r1.backbone == r2.backbone):
            continue  # within a table only one method on two backbones is suspicious
        vals = ", ".join(f"{m}={r1.paper[m]:g}" for m in shared)
        out.append(Flag("coincident-values", tuple(dict.fromkeys((s1.table, s2.table))),
                        tuple(_cell(s, r, m) for s, r in ((s1, r1), (s2, r2)) for m in shared),
                        f"Table {s1.table} {_who(r1)} and Table {s2.table} {_who(r2)} are "
                        f"different models printed with identical values ({vals})."))
    return out


def worse_than_baseline(all_suites: Sequence[Suite]) -> list[Flag]:
    out = []
    for s in all_suites:
        for row in s.rows:
            base = baseline_for(s, row)
            if base is None:
                continue
            ours = "ba2m" in row.method  # the text claims BA²M improves every indicator
            worse = [m for m in row.paper if m in base.paper and m != "std"
                     and m not in ("params_m", "flops_g")
                     and _not_better(m, row.paper[m], base.paper[m], strict=not ours)]
            if not worse:
                continue
            what = ", ".join(f"{m} {row.paper[m]:g} vs {base.paper[m]:g}" for m in worse)
            claim = ("the text says BA²M improves every network 'regardless of the network "
                     "structure'" if "ba2m" in row.method else
                     "the paper presents the compared methods as improvements of the baseline")
            out.append(Flag("worse-than-baseline", (s.table,),
                            tuple([_cell(s, row, m) for m in worse]
                                  + [_cell(s, base, m) for m in worse]),
                            f"Table {s.table}: {_who(row)} is printed "
                            f"{'no better' if ours else 'worse'} than {_who(base)} "
                            f"({what}), while {claim}."))
    return out


def _not_better(metric: str, value: float, base: float, strict: bool) -> bool:
    """``value`` is worse than ``base`` (or, unless ``strict``, equal)."""
    if value == base:
        return not strict
    return value < base if higher_is_better(metric) else value > base


def _find(table: str, backbone: str, method: str, setting: str = "") -> tuple[Suite, Row]:
    s = next(x for x in suite_registry.all_suites() if x.table == table)
    return s, next(r for r in s.rows if (r.backbone, r.method, r.setting) ==
                   (backbone, method, setting))


def text_claims() -> list[Flag]:
    """Sentences of the text that its own tables contradict."""
    out = []
    # §III-D: activated at test time, then deactivated at inference.
    ib = suite_registry.get("infer-batch")
    s5, r5 = _find("V", "ResNet-50", "ba2m")
    cells = tuple(_cell(ib, r, "top1_err") for r in ib.rows) + (_cell(s5, r5, "top1_err"),)
    out.append(Flag(
        "text-claim", ("III-D", "V"), cells,
        "§III-D says 'we activate the BA²M in the ResNet50 on the ImageNet. The size of test "
        "batch is {1,...,256}. All the results are 21.63%' (= Table V's top-1), then in the same "
        "paragraph 'we deactivate BA²M in the inference phase because we usually infer one "
        "image at a time'. Both cannot describe the reported model; batch-dependent weights "
        "scale features before later layers (batch norm adds a bias), so invariance is not "
        "automatic. The audit measures both readings (eval_mode batch / identity)."))
    # Gains vs depth.
    gains = []
    for table, backbone in (("XII", "ResNet-18"), ("XII", "ResNet-34"), ("V", "ResNet-50"),
                            ("V", "ResNet-101")):
        s, r = _find(table, backbone, "ba2m")
        _, b = _find(table, backbone, "baseline")
        gains.append((s, r, b, round(b.paper["top1_err"] - r.paper["top1_err"], 2)))
    values = [g[3] for g in gains]
    if values != sorted(values):
        desc = ", ".join(f"{r.backbone} {g:.2f}" for _, r, _, g in gains)
        out.append(Flag(
            "text-claim", ("V", "XII"),
            tuple(c for s, r, b, _ in gains for c in (_cell(s, r, "top1_err"),
                                                      _cell(s, b, "top1_err"))),
            "§IV-B says the gains 'are significant improved from 0.98% for ResNet18 to 2.53% for "
            f"ResNet101 as the network architecture becoming deeper', but the printed top-1 "
            f"gains are not monotone in depth: {desc}."))
    # "without increasing the amount of calculation" (Table XI).
    s11 = suite_registry.get("table11")
    more = []
    for r in s11.rows:
        b = baseline_for(s11, r)
        if r.method == "ba2m" and b is not None and r.paper.get("flops_g", 0) > b.paper.get(
                "flops_g", 1e9):
            more.append((r, b))
    if more:
        desc = ", ".join(f"{r.backbone} {b.paper['flops_g']:g} -> {r.paper['flops_g']:g} G"
                         for r, b in more)
        out.append(Flag(
            "text-claim", ("XI",),
            tuple(c for r, b in more for c in (_cell(s11, r, "flops_g"), _cell(s11, b, "flops_g"))),
            "§IV-B says BA²M improves every network 'without increasing the amount of "
            f"calculation', but Table XI prints more FLOPs with BA²M: {desc}."))
    return out


def inferred_rows(all_suites: Sequence[Suite]) -> list[Flag]:
    out = []
    for s in all_suites:
        rows = [r for r in s.rows if r.inferred]
        if rows:
            order = ", ".join(r.setting for r in rows)
            out.append(Flag("inferred-rows", (s.table,),
                            tuple(_cell(s, r, m) for r in rows for m in s.metrics if m in r.paper),
                            f"Table {s.table} lost its check-mark columns in the text; the row "
                            f"identities are inferred, in this order: {order}.", NOTE))
    return out


# --------------------------------------------------------------------------------- all
def _table_order(table: str) -> int:
    every = [s.table for s in suite_registry.all_suites()]
    return every.index(table) if table in every else len(every)


def consistency_flags(names: Iterable[str] | None = None) -> list[Flag]:
    """Every flag computed from all declared paper values; with ``names`` (suite names), only
    the flags that involve one of those tables."""
    every = suite_registry.all_suites()
    flags = (text_claims() + cheaper_than_baseline(every) + worse_than_baseline(every)
             + ba2m_increments(every) + identical_costs(every) + repeated_rows(every)
             + coincident_values(every) + inferred_rows(every))
    if names is not None:
        wanted = {suite_registry.get(n).table for n in names}
        flags = [f for f in flags if wanted & set(f.tables)]
    order = {INCONSISTENCY: 0, NOTE: 1}
    return sorted(flags, key=lambda f: (order[f.severity], min(map(_table_order, f.tables))))


def flags_frame(flags: Sequence[Flag]) -> pd.DataFrame:
    """One record per flag: kind, severity, tables, cells (as text), message."""
    return pd.DataFrame([{
        "kind": f.kind, "severity": f.severity, "tables": ", ".join(f.tables),
        "cells": "; ".join(map(str, f.cells)), "message": f.message,
    } for f in flags], columns=["kind", "severity", "tables", "cells", "message"])
