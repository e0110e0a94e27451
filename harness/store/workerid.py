"""Who holds a job: worker names that tell this machine's processes from other machines'.

A RUNNING job records its worker as ``HOST:KEY:PID``. KEY is a short digest of the kernel's
boot id and this process's PID namespace, so two machines (or two containers with separate PID
namespaces) that share a hostname never take each other's workers for their own. Only a worker
with this machine's ``HOST:KEY`` prefix can be declared dead at once (its PID is gone); any other
is trusted until its heartbeat goes stale (``harness.execute.runner.STALE_AFTER_S``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
from pathlib import Path
from typing import Any


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:
        return ""


@functools.cache
def machine_prefix() -> str:
    """``HOST:KEY`` for this machine, boot and PID namespace."""
    key = hashlib.sha256(
        f"{_read('/proc/sys/kernel/random/boot_id')}|{_pid_namespace()}".encode()).hexdigest()
    return f"{socket.gethostname()}:{key[:8]}"


def worker_name(pid: int | None = None) -> str:
    """This process's worker name (or that of ``pid`` on this machine)."""
    return f"{machine_prefix()}:{os.getpid() if pid is None else pid}"


def is_dead_local(worker: Any) -> bool:
    """True when ``worker`` is a process of this machine that no longer exists; False for a live
    one, another machine's, or a name in an older format (trusted until its heartbeat is stale)."""
    prefix = machine_prefix() + ":"
    if not isinstance(worker, str) or not worker.startswith(prefix):
        return False
    try:
        os.kill(int(worker[len(prefix):]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError):
        return False
    return False
