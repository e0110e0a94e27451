"""Worker names: only this machine's dead workers are declared dead at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from harness.store.workerid import is_dead_local, machine_prefix, worker_name
from tests.conftest import ROOT


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_this_machines_workers_are_judged_by_their_pid() -> None:
    assert worker_name().startswith(f"{socket.gethostname()}:")
    assert not is_dead_local(worker_name())  # this process
    assert is_dead_local(worker_name(_dead_pid()))


def test_a_namesake_host_or_pid_namespace_is_never_declared_dead() -> None:
    """Another machine (or container) with this hostname: same HOST, other KEY. And a name in
    the older HOST:PID format. Both wait for their heartbeat to go stale instead."""
    pid = _dead_pid()
    host, key = machine_prefix().split(":")
    other_key = format(int(key, 16) ^ 1, "08x")
    assert not is_dead_local(f"{host}:{other_key}:{pid}")
    assert not is_dead_local(f"{host}:{pid}")
    assert not is_dead_local(f"{host}:{key}:not-a-pid") and not is_dead_local(None)


def test_the_prefix_is_the_same_in_a_child_process() -> None:
    """Runner, workers and DDP ranks of one machine share the prefix."""
    code = "from harness.store.workerid import machine_prefix; print(machine_prefix())"
    out = subprocess.run([sys.executable, "-c", code],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == machine_prefix()
