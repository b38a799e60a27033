"""One writer at a time: an exclusive ``flock`` on a file in the data directory.

Two ingests interleaving their ledger and Chroma writes could each see the other's half-done
work as drift and undo it. ``flock`` is released by the kernel when the holder exits, even on
SIGKILL, so a crashed ingest never leaves a stale lock behind. The holder's pid is written into
the file only to make the waiting side's message useful.

A second lock, ``service.lock``, makes a running service the one writer of its data directory
(below): embedded Chroma supports one process per store, so while a service runs, other tools
hand their writes to it instead of opening the store themselves.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.core.settings import Settings

DEFAULT_LOCK_TIMEOUT_S = 120.0
LOCK_FILE_NAME = "ingest.lock"


class IngestLockedError(RuntimeError):
    """Another process kept the ingest lock for longer than we were willing to wait."""


@contextmanager
def ingest_lock(settings: Settings, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
    """The one-writer lock of a knowledge-base write: the data directory's ``flock`` and, when
    the ledger lives in a shared database, a PostgreSQL advisory lock as well, so writers in
    several processes (or hosts) sharing one Chroma server take turns."""
    with writer_lock(settings.data_dir, timeout_s):
        if not settings.shared_database:
            yield
            return
        from bot.core.leases import LeaseTimeoutError, session_lock
        from ingest.ledger import shared_engine

        try:
            lease = session_lock(shared_engine(settings.ledger_url), "ingest-writer", timeout_s)
            lease.__enter__()
        except LeaseTimeoutError as exc:
            raise IngestLockedError(
                f"Another process is writing to the shared knowledge base; gave up after "
                f"waiting {timeout_s:g} s. Run again when it has finished."
            ) from exc
        try:
            yield
        finally:
            lease.__exit__(None, None, None)


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


# --- the service lock: one process owns a data directory while it serves -----------------------
#
# Embedded Chroma supports one process per persistent path: a second process writing the same
# store leaves the first with a stale index ("Error finding id" on every query). So while
# ``supportbot serve`` runs on a data directory, it is the only writer: it holds ``service.lock``
# exclusively for its lifetime, and a local ``supportbot ingest`` holds it *shared* for the length
# of its run. An ingest that finds the lock held exclusively hands its work to the service
# (``service.json`` says where it listens and carries a per-start token); a service that finds
# shared holders waits for those ingests to finish before it opens Chroma.

SERVICE_LOCK_FILE = "service.lock"
SERVICE_INFO_FILE = "service.json"
LOCAL_TOKEN_HEADER = "X-Supportbot-Local-Token"
"""The header that carries ``service.json``'s token to the service's local admin endpoints."""


@dataclass(frozen=True)
class ServiceInfo:
    """What a running service tells local tools about itself (``service.json``, mode 0600)."""

    pid: int
    url: str
    token: str
    data_dir: str
    started_at: float

    def describe(self) -> str:
        return f"pid {self.pid}, {self.url}"


class ServiceRunningError(RuntimeError):
    """A service holds the data directory (``info`` is None while it is still starting)."""

    def __init__(self, message: str, info: ServiceInfo | None) -> None:
        super().__init__(message)
        self.info = info


def service_url(host: str, port: int) -> str:
    """A URL of the service that works from the same machine: a wildcard bind (``0.0.0.0``,
    ``::``) is reached on loopback."""
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def read_service_info(data_dir: Path) -> ServiceInfo | None:
    """``service.json`` of the data directory, or None when absent or unreadable."""
    try:
        raw = json.loads((data_dir / SERVICE_INFO_FILE).read_text())
        return ServiceInfo(
            pid=int(raw["pid"]),
            url=str(raw["url"]),
            token=str(raw["token"]),
            data_dir=str(raw.get("data_dir", data_dir)),
            started_at=float(raw.get("started_at", 0.0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_service_info(data_dir: Path, info: ServiceInfo) -> None:
    """Write ``service.json`` atomically; ``mkstemp`` creates it 0600 (it holds the token)."""
    fd, temp = tempfile.mkstemp(dir=data_dir, prefix=f".{SERVICE_INFO_FILE}.")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(info), handle)
        os.chmod(temp, 0o600)
        os.replace(temp, data_dir / SERVICE_INFO_FILE)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _held_by_a_service(path: Path) -> bool:
    """True when someone holds ``path`` exclusively (a service), False when only shared holders
    (local ingests) or nobody do."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def service_running(data_dir: Path) -> bool:
    """Whether a service holds ``data_dir`` now (a probe; it holds nothing afterwards)."""
    return (data_dir / SERVICE_LOCK_FILE).exists() and _held_by_a_service(
        data_dir / SERVICE_LOCK_FILE
    )


def running_service_message(data_dir: Path, info: ServiceInfo | None) -> str:
    who = f"a service ({info.describe()})" if info else "a service (still starting)"
    return (
        f"{who} is already serving the data directory {data_dir}. Stop it first, or give this "
        "one a data directory of its own (SUPPORTBOT_DATA_DIR)."
    )


@contextmanager
def service_lock(data_dir: Path, url: str, *, wait_s: float) -> Iterator[ServiceInfo]:
    """Own ``data_dir`` as its one writer while serving; yields the ``service.json`` written.

    Refuses at once (``ServiceRunningError``) when another service owns it. Waits up to
    ``wait_s`` for local ingests to finish (theirs is the shared hold, and the ingest writer
    lock for writers that do not come through the CLI), then refuses (``IngestLockedError``).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SERVICE_LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    info: ServiceInfo | None = None
    try:
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if _held_by_a_service(path):
                    running = read_service_info(data_dir)
                    raise ServiceRunningError(
                        running_service_message(data_dir, running), running
                    ) from None
                if time.monotonic() >= deadline:
                    raise IngestLockedError(
                        f"An ingest is still writing to {data_dir}; gave up after waiting "
                        f"{wait_s:g} s. Start the service when it has finished."
                    ) from None
                time.sleep(0.1)
        try:
            with writer_lock(data_dir, max(0.0, deadline - time.monotonic())):
                pass  # an ingest that took the writer lock without the CLI: let it finish
        except IngestLockedError as exc:
            raise IngestLockedError(
                f"An ingest ({_holder(data_dir / LOCK_FILE_NAME)}) is still writing to "
                f"{data_dir}; gave up after waiting {wait_s:g} s. Start the service when it "
                "has finished."
            ) from exc
        info = ServiceInfo(
            pid=os.getpid(),
            url=url,
            token=secrets.token_urlsafe(32),
            data_dir=str(data_dir.resolve()),
            started_at=time.time(),
        )
        _write_service_info(data_dir, info)
        yield info
    finally:
        if info is not None and read_service_info(data_dir) == info:
            (data_dir / SERVICE_INFO_FILE).unlink(missing_ok=True)
        os.close(fd)  # releases the lock


@contextmanager
def offline_claim(data_dir: Path) -> Iterator[None]:
    """For a writer outside the service (``supportbot ingest``): a shared hold that keeps a
    service from starting until the block ends. Raises ``ServiceRunningError`` at once when a
    service owns ``data_dir``: the caller hands its work to that service instead."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / SERVICE_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            running = read_service_info(data_dir)
            raise ServiceRunningError(running_service_message(data_dir, running), running) from None
        yield
    finally:
        os.close(fd)
