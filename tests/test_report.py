"""Reports from a real smoke run: every format, figures, pending rows, gains, the §III-D audit,
the paper's consistency flags and an empty database."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from harness.report import (FORMATS, build_report, consistency_flags, flags_frame,
                            generate_report, write_report)
from harness.report.audit import stored_audit
from harness.report.stats import summarize, t_quantile, welch_gain, within_rule
from harness.report.tables import display_frame
from tests.conftest import AUDIT_SIZES, SmokeDB

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def smoke(smoke_db: SmokeDB, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The session's real smoke run (tests/conftest.py): table7 (2 rows x 2 seeds) and
    infer-batch (1 job), one epoch each on synthetic data; then the §III-D audit at
    AUDIT_SIZES. Reports are written under this module's own folder."""
    root = tmp_path_factory.mktemp("report")
    smoke_db.audit.to_pickle(root / "audit.pkl")
    return {"db": smoke_db.db, "results": smoke_db.results, "root": str(root),
            "audit": str(root / "audit.pkl")}


@pytest.fixture(scope="module")
def written(smoke: dict[str, str]) -> dict[str, Path]:
    """table7 and infer-batch (given as its numeral) in every format, params/FLOPs counted
    (by `ba2m-bench count`'s cost_table, which stores them; the report reads them)."""
    import suites
    from harness.costs.compare import cost_table
    from harness.store.db import ResultsDB

    with ResultsDB(smoke["db"]) as db:
        cost_table([suites.get("table7"), suites.get("infer-batch")], db=db)
    out = Path(smoke["root"]) / "reports"
    _, files = generate_report(["table7", "III-D"], FORMATS, out, smoke["db"])
    return files


# -------------------------------------------------------------------------- formats
def test_every_format_has_the_rows_and_paper_values(written: dict[str, Path]) -> None:
    assert set(written) == set(FORMATS)
    for fmt, path in written.items():
        text = path.read_text(encoding="utf-8")
        for needle in ("ResNet-50", "inside", "between", "17.71", "17.6", "21.63"):
            assert needle in text, (fmt, needle)
        if fmt != "csv":
            assert "NOT COMPARABLE" in text, fmt
    assert "\\begin{tabular}" in written["latex"].read_text()
    assert "BA²M reading" in written["markdown"].read_text()
    assert "batch_scale=none" in written["markdown"].read_text()
    assert "| Backbone | Method | Setting |" in written["markdown"].read_text()


def test_csv_is_long_form_with_seed_statistics(written: dict[str, Path]) -> None:
    frame = pd.read_csv(written["csv"])
    for col in ("table", "backbone", "method", "setting", "metric", "paper",
                "reproduced_median", "mean", "std", "n", "status", "best_epoch_median",
                "last_epoch_median", "diff", "profile"):
        assert col in frame.columns
    err = frame[(frame["table"] == "VII") & (frame["metric"] == "err")]
    assert list(err["setting"]) == ["inside", "between"]
    assert list(err["paper"]) == [17.71, 17.60]
    assert (err["n"] == 2).all() and err["std"].notna().all()
    assert err["reproduced"].between(0, 100).all()
    assert (err["status"] == "not comparable (smoke profile)").all()
    assert (frame[frame["metric"] == "params_m"]["reproduced"].dropna() > 1).all()
    flags = pd.read_csv(written["csv"].parent / "flags.csv")
    assert {"kind", "tables", "cells", "message"} <= set(flags.columns)


def test_figures_are_png_and_svg(written: dict[str, Path]) -> None:
    figs = written["markdown"].parent / "figures"
    stems = {p.stem for p in figs.glob("*.png")}
    assert {"table7-bars", "infer-batch-test-batch", "table7-curves", "table7-scatter",
            "table7-weight-share"} <= stems  # BA²M's weight shares, recorded every epoch
    for stem in stems:
        assert (figs / f"{stem}.png").read_bytes()[:8] == PNG_MAGIC
        root = ET.parse(figs / f"{stem}.svg").getroot()
        assert root.tag.endswith("svg")
    assert "![Table VII: position of BA²M](figures/table7-bars.png)" in \
        written["markdown"].read_text()


def test_html_is_one_self_contained_page(written: dict[str, Path]) -> None:
    text = written["html"].read_text(encoding="utf-8")
    links = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', text)
    assert links, "expected embedded figures and in-page links"
    external = [u for u in links if not u.startswith(("data:", "#"))]
    assert external == []
    assert text.count("data:image/png;base64,") >= 4
    assert "<link" not in text and "<script" not in text


# ------------------------------------------------------------------ statuses and gains
def test_missing_runs_show_pending(smoke: dict[str, str], tmp_path: Path) -> None:
    report = build_report(["table8"], smoke["db"], costs="none")
    rows = {r.row.setting: r for r in report.suites[0].rows}
    for r in ("R=2", "R=4", "R=8", "R=16"):
        assert rows[r].status_text == "pending (0/5 seeds)"
    # R=32 is Table VII's 'between' model: its jobs are found by content
    assert rows["R=32"].n_done == 2 and rows["R=32"].status == "not comparable"
    assert any("4 of 5 rows pending" in m for m in report.suites[0].messages)
    md = write_report(report, ["markdown"], tmp_path)["markdown"].read_text()
    assert md.count("pending (0/5 seeds)") == 4
    assert "70.80" in md  # the paper's params of R=2, shown although pending


def test_gains_need_two_seeds_on_each_side(smoke: dict[str, str]) -> None:
    # Table XIII: '1+2+3+4' is Table VII's 'between' model (2 seeds), its baseline never ran
    report = build_report(["table13"], smoke["db"], costs="none")
    sr = report.suites[0]
    assert {r.row.setting for r in sr.rows if r.n_done} == {"blocks=1+2+3+4"}
    gains = sr.gains.set_index("setting")
    assert len(gains) == 15
    full = gains.loc["blocks=1+2+3+4"]
    assert full["paper_gain"] == pytest.approx(21.49 - 17.60)
    assert (full["n_method"], full["n_baseline"]) == (2, 0)
    assert math.isnan(full["ci_low"]) and pd.isna(full["significant"])
    assert full["note"] == "needs >= 2 completed seeds each (have 2 and 0)"


def test_empty_database_says_what_to_run(tmp_path: Path) -> None:
    report, files = generate_report(["table7", "table14"], ["markdown", "html"], tmp_path / "r",
                                    str(tmp_path / "empty.sqlite"), costs="none")
    t7, t14 = report.suites
    assert any("no results for table7 yet: run `ba2m-bench run table7 --profile smoke`" in m
               for m in t7.messages)
    assert all(r.status_text == "pending (0/5 seeds)" for r in t7.rows)
    assert "no results for table14 yet" in t14.messages[0]  # detection runs (issue 15)
    assert all(r.status_text == "pending (0/1 seeds)" for r in t14.rows)
    md = files["markdown"].read_text()
    assert "17.71" in md and "pending (0/5 seeds)" in md and "ba2m-bench run table7" in md
    frame = display_frame(t7.rows)
    assert list(frame[("Err (%)", "paper")]) == ["17.71", "17.60"]


# ------------------------------------------------------------------------------ audit
def test_audit_points_cover_every_mode_order_and_size(smoke: dict[str, str]) -> None:
    audit = pd.read_pickle(smoke["audit"])
    assert len(audit) == 2 * 2 * len(AUDIT_SIZES)
    keys = set(zip(audit["mode"], audit["order"], audit["batch_size"]))
    assert keys == {(m, o, b) for m in ("batch", "identity")
                    for o in ("shuffled", "class-sorted") for b in AUDIT_SIZES}
    assert audit["top1_err"].between(0, 100).all() and audit["top5_err"].between(0, 100).all()
    assert (audit["effective_batch_size"] <= 64).all()  # the smoke val set has 64 images
    # identity mode ignores the batch: the same error at every size
    ident = audit[audit["mode"] == "identity"]
    assert ident.groupby("order")["top1_err"].nunique().eq(1).all()


def test_audit_is_stored_and_reported(smoke: dict[str, str], written: dict[str, Path]) -> None:
    from harness.store.db import ResultsDB

    with ResultsDB(smoke["db"]) as db:
        stored = stored_audit(db.eval_frame("infer-batch"))
    assert len(stored) == 2 * 2 * len(AUDIT_SIZES)
    html = written["html"].read_text(encoding="utf-8")
    assert "§III-D audit" in html and "same at every size" in html


# ---------------------------------------------------------------------- consistency
def test_consistency_flags_find_the_known_inconsistencies() -> None:
    flags = consistency_flags()
    msgs = {f.kind: [] for f in flags}
    for f in flags:
        msgs[f.kind].append(f)

    def has(kind: str, *needles: str) -> bool:
        return any(all(n in f.message for n in needles) for f in msgs.get(kind, []))

    assert has("cheaper-than-baseline", "Table I:", "ResNet-101 + BA²M", "42.32 < 42.7")
    assert has("cheaper-than-baseline", "Table V:", "ResNet-101 + GE", "33.7 < 44.55")
    assert has("ba2m-increment", "ResNet-18 +0.59", "ResNet-34 +0.12")
    assert has("text-claim", "§III-D", "deactivate")
    assert has("worse-than-baseline", "ResNet-101 + GC", "25.36 vs 23.38")
    assert has("worse-than-baseline", "Table XI", "ResNet-101 + SE", "20.89 vs 20")
    assert has("worse-than-baseline", "WRN-28 (w=10) + GE", "20.2 vs 18.89")
    assert has("identical-costs", "Table V", "ResNet-50 + SE and CBAM", "28.09")
    assert has("coincident-values", "Table VII", "inside", "Table VIII", "R=2")
    assert has("inferred-rows", "Table IX") and has("inferred-rows", "Table XIII")
    repeats = {f.tables for f in msgs["repeated-rows"]}
    assert ("I", "XI") in repeats and ("II", "XII") in repeats and ("VI", "XI") in repeats
    for f in flags:
        assert f.cells and all(c.table for c in f.cells)
    # cells name table/backbone/method/metric/value
    ge = next(f for f in msgs["cheaper-than-baseline"] if "GE" in f.message and "V:" in f.message)
    assert any(c.metric == "params_m" and c.value == 33.70 and c.method == "ge" for c in ge.cells)


def test_flags_are_filtered_by_table() -> None:
    only = consistency_flags(["table7"])
    assert only and all("VII" in f.tables for f in only)
    frame = flags_frame(only)
    assert list(frame.columns) == ["kind", "severity", "tables", "cells", "message"]


# ------------------------------------------------------------------------------ stats
def test_t_quantiles_match_the_table() -> None:
    for df, q in ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042)):
        assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-3)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.960, abs=1e-3)


def test_welch_gain_and_rule() -> None:
    base, ours = summarize([21.4, 21.6, 21.5]), summarize([17.5, 17.7, 17.6])
    g = welch_gain(base, ours)
    assert g.diff == pytest.approx(3.9) and g.significant is True
    assert g.low == pytest.approx(3.9 - 2.776 * math.sqrt(2 * 0.01 / 3), abs=1e-3)
    assert welch_gain(summarize([1.0]), ours).significant is None
    assert within_rule(17.9, 17.6, std=math.nan)  # 0.5-point tolerance
    assert not within_rule(18.2, 17.6, std=0.2)
    assert within_rule(18.2, 17.6, std=0.35)  # 2 x std


def test_a_collapsed_job_is_named_in_the_report_messages() -> None:
    from harness.report.build import collapse_warnings

    even = {"after.1.1": {"max_share_mean": 0.02, "max_share_max": 0.05}}
    collapsed = {"after.1.1": {"max_share_mean": 0.91, "max_share_max": 1.0}}
    curves = {
        "ba2m (job 1)": pd.DataFrame({"epoch": [1, 2], "diagnostics": [even, collapsed]}),
        "ba2m (job 2)": pd.DataFrame({"epoch": [1, 2], "diagnostics": [even, even]}),
        "baseline (job 3)": pd.DataFrame({"epoch": [1], "diagnostics": [None]}),
    }
    lines = collapse_warnings(curves)
    assert len(lines) == 1 and "job 1" in lines[0] and "after.1.1" in lines[0]
    assert "91%" in lines[0]


def test_the_provenance_states_each_ba2m_reading() -> None:
    from harness.report.provenance import ba2m_reading

    def cfg(**o: object) -> dict:
        return {"model": {"attention": "ba2m", "options": o}}

    text = ba2m_reading([cfg(excite="residual", batch_scale="none", eval_mode="batch"),
                         cfg(excite="scale", batch_scale="n", eval_mode="identity"),
                         {"model": {"attention": None, "options": {}}}])
    assert "excite=residual (x + w·x; departs from Eq. 13), batch_scale=none" in text
    assert "excite=scale, batch_scale=n, eval_mode=identity" in text


def test_curves_of_a_ba2m_job_include_its_weight_shares(smoke: dict[str, str],
                                                        tmp_path: Path) -> None:
    from harness.report import write_training_curves
    from harness.store.db import ResultsDB

    with ResultsDB(smoke["db"]) as db:
        res = db.results_frame("table7")
    job = int(res["job_id"].iloc[0])
    paths = write_training_curves(job, tmp_path, smoke["db"])
    assert {p.name for p in paths} == {f"curves-{job}.png", f"curves-{job}.svg",
                                       f"weight-share-{job}.png", f"weight-share-{job}.svg"}
