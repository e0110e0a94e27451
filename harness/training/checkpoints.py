"""A job's checkpoint: where it lives, how it is written and read, and the model it holds.

Writes are atomic (temp file + fsync + rename) with a SHA-256 sidecar; a checkpoint that fails
its checksum or cannot be read is reported as absent, with the reason. Loading uses
``weights_only=True``, so a checkpoint cannot run code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.paths import inside
from harness.plan.spec import stable_hash
from harness.training.data import Data
from harness.training.job import build_job_model, open_job_data


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (disk full, permissions, a file in the way)."""


@dataclass
class Checkpoint:
    """Where a job's checkpoint lives."""

    path: Path

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".sha256")

    def save(self, state: dict[str, Any]) -> None:
        """Write atomically: a crash leaves the old checkpoint or the new one, never half.
        Raises :class:`CheckpointError` (one line naming the file and the fix) on OS errors."""
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        side_tmp = self.sidecar.with_suffix(f".tmp{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:  # a Python file, so that OS errors keep their errno
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            digest = _sha256(tmp)
            os.replace(tmp, self.path)
            side_tmp.write_text(digest)
            os.replace(side_tmp, self.sidecar)
        except (OSError, RuntimeError) as exc:
            cause = _os_error(exc)
            if cause is None:
                raise
            for leftover in (tmp, side_tmp):
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)
            raise CheckpointError(
                f"cannot write checkpoint {self.path}: "
                f"{cause.strerror or cause}; free disk space or fix the folder's permissions, "
                "then re-run with --retry-failed") from exc

    def load(self) -> tuple[dict[str, Any] | None, str]:
        """(state, note): state is None when absent or unusable; the note says why."""
        if not self.path.exists():
            return None, ""
        if self.sidecar.exists() and self.sidecar.read_text().strip() != _sha256(self.path):
            return None, f"checkpoint {self.path.name} failed its checksum; restarted from scratch"
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True), ""
        except Exception as exc:  # noqa: BLE001 - any unreadable file means: start again
            reason = str(exc).splitlines()[0][:200]
            return None, (f"checkpoint {self.path.name} unreadable ({reason}); "
                          "restarted from scratch")


def _os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc`` (torch.save reports a failed write as a RuntimeError)."""
    while exc is not None and not isinstance(exc, OSError):
        exc = exc.__cause__ or exc.__context__
    return exc


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_for(config: dict[str, Any], results_dir: str | Path) -> Checkpoint:
    """A job's checkpoint: ``results/checkpoints/<config hash>.pt``."""
    stored = {k: v for k, v in config.items() if k not in ("data", "runtime")} | {
        "data": {k: v for k, v in config["data"].items() if k not in ("data_root", "download")}
    }
    return Checkpoint(inside(results_dir, "checkpoints", f"{stable_hash(stored)}.pt"))


def load_trained(config: dict[str, Any], results_dir: str | Path,
                 data_root: str | None = None) -> tuple[nn.Module, Data]:
    """The trained model of a stored job config (eval mode, CPU) and its data."""
    runtime = {**config, "data": {**config["data"], "data_root": data_root}}
    data = open_job_data(runtime)
    model = build_job_model(config, data.num_classes)
    saved, note = checkpoint_for(config, results_dir).load()
    if saved is None:
        raise FileNotFoundError(note or f"no checkpoint for this job under {results_dir}")
    model.load_state_dict(saved["model"])
    return model.eval(), data
