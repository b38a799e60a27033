"""The shared engines for the scale tests: a fresh PostgreSQL database, a Redis db number, a
Chroma server (``chroma run``). Each helper skips the test (with the reason) when its server is
absent, so the suite runs anywhere; ``.ci/run`` checks that CI has PostgreSQL and Redis.

    with fresh_database() as url, redis_db() as redis_url, chroma_server(tmp) as chroma_url:
        ...

``SUPPORTBOT_TEST_PG`` (a SQLAlchemy URL of a database the tests may create databases from) and
``SUPPORTBOT_TEST_REDIS`` override the local defaults.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get(
    "SUPPORTBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SUPPORTBOT_TEST_REDIS", "redis://127.0.0.1:6379")
REDIS_DB_RANGE = range(8, 16)
"""Redis db numbers the tests use (flushed before and after); 0-7 are left alone."""


def postgres_problem(url: str = PG_ADMIN_URL) -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    try:
        import psycopg  # noqa: F401
        from sqlalchemy import create_engine, text
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:
        return f"PostgreSQL not reachable at {url}: {exc.__class__.__name__}"
    finally:
        engine.dispose()
    return None


def redis_problem(url: str = REDIS_URL) -> str | None:
    """Why Redis cannot be used, or None."""
    try:
        import redis
    except ImportError as exc:
        return f"redis (the Python client) is not installed ({exc})"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:
        return f"Redis not reachable at {url}: {exc.__class__.__name__}"
    return None


def require_shared_engines() -> None:
    """Skip the calling test (or module) unless PostgreSQL and Redis are reachable."""
    for problem in (postgres_problem(), redis_problem()):
        if problem:
            pytest.skip(f"scale test needs PostgreSQL and Redis: {problem}")


@contextmanager
def fresh_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A new, empty PostgreSQL database (random name) for the block, dropped afterwards;
    yields its SQLAlchemy URL."""
    problem = postgres_problem(admin_url)
    if problem:
        pytest.skip(problem)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"sb_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def redis_db(url: str = REDIS_URL) -> Iterator[str]:
    """A Redis database number nobody else uses now, flushed before and after; yields its URL."""
    problem = redis_problem(url)
    if problem:
        pytest.skip(problem)
    import redis

    base = url.rstrip("/")
    client = redis.Redis.from_url(base)
    try:
        for number in REDIS_DB_RANGE:  # claim a number with a marker key (SET NX)
            claim = redis.Redis.from_url(f"{base}/{number}")
            if claim.set("supportbot-test-claim", str(os.getpid()), nx=True, ex=3600):
                break
            claim.close()
        else:
            pytest.skip("no free Redis db number for the test")
        claim.flushdb()
        try:
            yield f"{base}/{number}"
        finally:
            claim.flushdb()
            claim.close()
    finally:
        client.close()


def chroma_command() -> list[str]:
    found = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    return [found]


@contextmanager
def chroma_server(directory: Path, timeout: float = 60.0) -> Iterator[str]:
    """``chroma run`` on a free port with its store in ``directory``; yields its URL."""
    from tests.helpers.child_server import free_port

    command = chroma_command()
    if not Path(command[0]).exists():
        pytest.skip("the chroma command (chromadb) is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory.parent / f"chroma-{port}.log"
    process = subprocess.Popen(
        [*command, "run", "--path", str(directory), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"chroma run exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"chroma run did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def main() -> int:
    """``python -m tests.helpers.servers``: exit 1 (saying why) unless PostgreSQL and Redis are
    reachable; CI runs it so the scale tests cannot pass by skipping."""
    problems = [p for p in (postgres_problem(), redis_problem()) if p]
    for problem in problems:
        print(f"scale tests: {problem}", file=sys.stderr)
    if not problems:
        print(f"scale tests: PostgreSQL ({PG_ADMIN_URL}) and Redis ({REDIS_URL}) reachable")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
