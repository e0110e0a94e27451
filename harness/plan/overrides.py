"""Command-line overrides of a profile: what ``run`` changes in the jobs it expands, and the
``--only`` row filters and ``--set`` config settings it is given."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from harness.errors import UserError
from suites.base import Row


@dataclass(frozen=True, kw_only=True)
class Overrides:
    """Command-line overrides of a profile."""

    seeds: int | None = None
    epochs: int | None = None
    only: str | None = None  # row filter, e.g. "method=ba2m,backbone=ResNet-50"
    dataset: str | None = None  # provider instead of the suite's dataset (e.g. image-folder)
    batch_size: int | None = None
    sets: tuple[str, ...] = ()  # "[FILTER:]KEY=VALUE" config overrides (see parse_set)
    gpus_per_job: int | None = None  # data-parallel processes of every job (--gpus-per-job)


@dataclass(frozen=True)
class Setting:
    """One ``--set``: a dotted config key, its new value, and the rows it applies to."""

    text: str
    rows: dict[str, set[str]]  # a --only filter; empty = every row
    path: tuple[str, ...]
    value: Any


def parse_only(only: str | None) -> dict[str, set[str]]:
    """``"method=ba2m,backbone=ResNet-50|ResNet-101"`` -> {field: allowed values}."""
    if not only:
        return {}
    fields = ("backbone", "arch", "method", "setting")
    out: dict[str, set[str]] = {}
    for part in only.split(","):
        m = re.fullmatch(r"\s*(\w+)\s*=\s*(.+?)\s*", part)
        if not m or m.group(1) not in fields:
            raise UserError(
                f"malformed --only filter {part!r}; write FIELD=VALUE[|VALUE],... with FIELD "
                f"one of {', '.join(fields)} (e.g. --only method=ba2m,setting=R=16)"
            )
        out.setdefault(m.group(1), set()).update(v.strip() for v in m.group(2).split("|"))
    return out


#: Config sections ``--set`` may change (seed and evals come from --seeds and the suite).
SETTABLE = ("model", "data", "train")


def parse_set(text: str) -> Setting:
    """``"method=ba2m:model.options.reduction=16"`` -> a :class:`Setting` (filter optional;
    the value is read as JSON when it parses, else as a string)."""
    m = re.fullmatch(r"\s*(?:(?P<rows>[^:]+):)?\s*(?P<key>[\w.]+)\s*=\s*(?P<value>.*?)\s*", text)
    if not m or m.group("key").split(".")[0] not in SETTABLE or "." not in m.group("key"):
        raise UserError(
            f"malformed --set {text!r}; write [FILTER:]KEY=VALUE with KEY a dotted config key "
            f"under {', '.join(SETTABLE)} (e.g. --set model.options.reduction=16 or "
            "--set method=ba2m:train.lr=0.05)")
    try:
        value = json.loads(m.group("value"))
    except json.JSONDecodeError:
        value = m.group("value")
    return Setting(text.strip(), parse_only(m.group("rows")), tuple(m.group("key").split(".")),
                   value)


def apply_sets(config: dict[str, Any], row: Row, settings: list[Setting]) -> list[str]:
    """Apply the settings whose filter matches ``row`` to ``config`` in place; returns the
    texts applied. A key must already exist in the config (every option in force is there),
    and the new value must have the old one's type."""
    applied = []
    for st in settings:
        if not matches(row, st.rows):
            continue
        node = config
        for i, part in enumerate(st.path[:-1]):
            if not isinstance(node.get(part), dict):
                known = ", ".join(k for k, v in node.items() if isinstance(v, dict))
                raise UserError(f"--set {st.text!r}: {'.'.join(st.path[:i + 1])} is not a config "
                                f"section; sections here: {known or 'none'}")
            node = node[part]
        key = st.path[-1]
        if key not in node:
            raise UserError(f"--set {st.text!r}: no key {key!r} under {'.'.join(st.path[:-1])}; "
                            f"known: {', '.join(sorted(node))}")
        old, new = node[key], st.value
        if old is not None and not _same_kind(old, new):
            raise UserError(f"--set {st.text!r}: {'.'.join(st.path)} is {type(old).__name__} "
                            f"(now {old!r}), got {type(new).__name__} {new!r}")
        node[key] = float(new) if isinstance(old, float) and isinstance(new, int) else new
        applied.append(st.text)
    return applied


def _same_kind(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)):
        return isinstance(new, (int, float)) and (isinstance(old, float) or isinstance(new, int))
    return type(old) is type(new)


def matches(row: Row, filters: dict[str, set[str]]) -> bool:
    """Whether ``row`` passes an ``--only`` filter (see :func:`parse_only`)."""
    return all(str(getattr(row, f) or "") in allowed for f, allowed in filters.items())


def check_positive(name: str, value: int | None) -> None:
    """A one-line error unless ``--name`` is unset or a positive integer."""
    if value is not None and value < 1:
        raise UserError(f"--{name} must be a positive integer, got {value}")
