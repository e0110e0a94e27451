"""The benchmark runs and writes its JSON (no timing is asserted: machines are noisy)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from harness.bench import run_bench, save, summary_line
from harness.cli import app


def test_bench_runs_on_the_cpu_and_writes_json(tmp_path: Path) -> None:
    res = run_bench("cpu", arch="resnet20", batch=4, repeats=1,
                    parts=("step", "loop", "pipeline"), pipeline_images=512)
    assert res.ba2m_step_ratio and res.ba2m_step_ratio > 0
    assert res.ba2m_memory_ratio is None  # measured on GPU only
    assert res.loop_ratio and res.pipeline_ratio
    path = save(res, tmp_path, str(tmp_path / "out.json"))
    data = json.loads(path.read_text())
    for key in ("device", "ba2m_step_ratio", "ba2m_memory_ratio", "loop_ratio",
                "pipeline_ratio", "count_seconds"):
        assert key in data
    assert json.loads((tmp_path / "out.json").read_text()) == data
    assert summary_line(res).startswith("ratios: ba2m_step=")


def test_bench_bad_input() -> None:
    result = CliRunner().invoke(app, ["bench", "--parts", "step,teleport"])
    assert result.exit_code == 2 and "unknown bench part" in result.output
