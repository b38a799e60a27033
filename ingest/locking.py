"""One writer at a time: an exclusive ``flock`` on a file in the data directory.

Two ingests interleaving their ledger and Chroma writes could each see the other's half-done
work as drift and undo it. ``flock`` is released by the kernel when the holder exits, even on
SIGKILL, so a crashed ingest never leaves a stale lock behind. The holder's pid is written into
the file only to make the waiting side's message useful.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_LOCK_TIMEOUT_S = 120.0
LOCK_FILE_NAME = "ingest.lock"


class IngestLockedError(RuntimeError):
    """Another process kept the ingest lock for longer than we were willing to wait."""


@contextmanager
def writer_lock(data_dir: Path, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the data directory's ingest lock, waiting up to ``timeout_s`` for it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IngestLockedError(
                        f"Another ingest ({_holder(path)}) is writing to {data_dir}; gave up "
                        f"after waiting {timeout_s:g} s. Run again when it has finished."
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"
