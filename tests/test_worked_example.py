"""docs/worked-example.md quotes its shipped database: every number it prints is recomputed
here from ``docs/worked-example/he2016-mini.sqlite`` (the run it describes), so the page
cannot drift from the results it shows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.report.stats import summarize, welch_gain

DOCS = Path(__file__).resolve().parents[1] / "docs"
DB = DOCS / "worked-example" / "he2016-mini.sqlite"
PAGE = DOCS / "worked-example.md"


@pytest.fixture(scope="module")
def best() -> dict[tuple[str, int], float]:
    """(method, seed) -> best-epoch test error of the mini run's jobs."""
    with sqlite3.connect(f"file:{DB}?mode=ro", uri=True) as con:
        rows = con.execute(
            "select coalesce(json_extract(j.config, '$.model.attention'), 'baseline'), "
            "json_extract(j.config, '$.seed'), min(e.top1_err), "
            "json_extract(j.config, '$.profile'), json_extract(j.config, '$.data.provider') "
            "from jobs j join epochs e on e.job_id = j.id group by j.id").fetchall()
    assert {(r[3], r[4]) for r in rows} == {("mini", "image-folder")}
    return {(method, seed): err for method, seed, err, _, _ in rows}


def page_text() -> str:
    """The page with its minus signs as hyphens and its lines joined."""
    return " ".join(PAGE.read_text().replace("−", "-").split())


def test_the_page_quotes_each_seeds_error_and_the_medians(best: dict) -> None:
    text = page_text()
    assert sorted(best) == [(m, s) for m in ("ba2m", "baseline") for s in range(3)]
    for seed in range(3):
        row = f"| {seed} | {best['baseline', seed]:.2f} | {best['ba2m', seed]:.2f} |"
        assert row in text, row
    base = summarize(best["baseline", s] for s in range(3))
    ba2m = summarize(best["ba2m", s] for s in range(3))
    assert f"**{base.median:.2f}** | **{ba2m.median:.2f}**" in text
    assert f"{base.mean:.2f} ± {base.std:.2f} | {ba2m.mean:.2f} ± {ba2m.std:.2f}" in text


def test_the_page_quotes_the_gain_and_its_interval(best: dict) -> None:
    gain = welch_gain(summarize(best["baseline", s] for s in range(3)),
                      summarize(best["ba2m", s] for s in range(3)))
    quoted = f"{gain.diff:+.2f} points, [{gain.low:+.2f}, {gain.high:+.2f}], not significant"
    assert not gain.significant
    assert quoted.lstrip("+") in page_text().replace("**", ""), quoted


def test_the_page_quotes_the_audit() -> None:
    with sqlite3.connect(f"file:{DB}?mode=ro", uri=True) as con:
        rows = con.execute(
            "select json_extract(j.config, '$.seed'), r.eval_key, r.top1_err "
            "from eval_results r join jobs j on j.id = r.job_id").fetchall()
    audit = {(seed, key): err for seed, key, err in rows}
    assert len(audit) == 3 * 2 * 2 * 2  # models x modes x orders x batch sizes
    text = page_text()
    for seed in range(3):
        for mode, label in (("batch", "batch"), ("identity", "identity")):
            err = {(order, b): audit[seed, f"audit:mode={mode},order={order},batch_size={b}"]
                   for order in ("shuffled", "class-sorted") for b in (1, 128)}
            assert err["shuffled", 1] == err["class-sorted", 1]  # one image: order is moot
            cells = (f"{err['shuffled', 1]:.2f} | {err['shuffled', 128]:.2f} / "
                     f"{err['class-sorted', 128]:.2f} |")
            assert f"| seed {seed} | {label}" in text
            assert cells in text, cells
