"""Worker processes that die with their parent, resume directories that one process at a time may use, and the CPU
time a process and its workers spent (:func:`cpu_seconds`).

A stage that fans work out to processes (DPO replicates, pre-training replicates) must not leave them running when
the stage itself is killed (``dvc repro`` interrupted, SIGKILL, OOM-killer): on Linux each worker asks the kernel to
send it SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``, :func:`die_with_parent`), and checks that the
parent is still the one that started it (the parent may already be gone when the worker starts).

A resume directory is locked by the process training into it (:class:`ResumeLock`): an exclusive ``flock`` on
``<dir>/.lock``, which the kernel releases when that process dies however it dies (so a stale lock never blocks a
restart), plus the holder's pid, host and start time written in the file so a refusal names who holds it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of the (worker) processes it has waited for, since it started
    (``getrusage`` of ``RUSAGE_SELF`` and ``RUSAGE_CHILDREN``); a stage's CPU time is the difference of two calls."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def die_with_parent(parent_pid: int | None = None) -> bool:
    """In a worker: get SIGKILL when the parent process dies (Linux); exit now if it is already gone.

    Returns whether the kernel hook is in place (False on other systems, where workers rely on their pool)."""
    armed = False
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died before the hook was armed
        os._exit(1)
    return armed


def worker_pool(workers: int):
    """A ``spawn`` process pool whose workers die with this process (see :func:`die_with_parent`)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=die_with_parent,
                               initargs=(os.getpid(),))


class ResumeDirBusy(RuntimeError):
    """Another live process is training into this resume directory (one-line message naming it)."""


class ResumeLock:
    """``with ResumeLock(folder):`` — exclusive use of a resume directory for the duration of the block."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / ".lock"
        self._fd: int | None = None

    def acquire(self) -> "ResumeLock":
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._holder(fd)
            os.close(fd)
            raise ResumeDirBusy(
                f"resume directory '{self.folder}' is in use by {holder}; a second run would corrupt its checkpoints "
                f"— wait for it or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"process {info['pid']} on {info['host']} (since {time.strftime('%H:%M:%S', time.localtime(info['since']))})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "ResumeLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
