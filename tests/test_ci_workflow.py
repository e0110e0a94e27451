"""The GitHub Actions workflow runs what .ci/run runs: lint, the count check, the tests."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _run_lines(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_the_workflow_has_the_steps_of_ci_run() -> None:
    local = (ROOT / ".ci" / "run").read_text()
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    jobs = flow["jobs"]
    assert set(jobs) == {"lint", "counts", "tests"}
    for command, job in (("ruff check .", "lint"), ("ba2m-bench count --check", "counts"),
                         ("python -m pytest -q", "tests")):
        assert command in local, f".ci/run no longer runs {command!r}"
        assert any(command in line for line in _run_lines(jobs[job])), (job, command)
    assert any('pip install -e ".[test]"' in line for line in _run_lines(jobs["tests"]))
    assert any("postgresql" in line and "chromium" in line for line in _run_lines(jobs["tests"]))
    assert "apt-get install -y -qq chromium" in local and "BA2M_TEST_ARTIFACTS" in local
    python = {s["with"]["python-version"] for j in jobs.values() for s in j["steps"]
              if "setup-python" in s.get("uses", "")}
    assert python == {"3.11"}
