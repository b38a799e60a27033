"""People who work the service: agents, leads and admins.

Passwords are hashed with argon2id (``argon2-cffi``); API tokens are random, shown once, and
stored only as a SHA-256 digest (a token is 256 random bits, so a fast hash is enough and lets
us look a token up by its digest). ``supportbot user add`` / ``supportbot user token`` are the
command-line entry points.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import cache
from typing import TYPE_CHECKING, Literal, cast

import typer
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.models import User

if TYPE_CHECKING:
    from bot.people.throttle import HashPool

Role = Literal["agent", "lead", "admin"]
ROLES: tuple[Role, ...] = ("agent", "lead", "admin")
# Each role includes the ones before it: a lead can do what an agent can, an admin everything.
ROLE_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}
TOKEN_PREFIX = "sbt_"

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verifying against this keeps "unknown e-mail" as slow as "wrong password"."""
    return _hasher.hash("not-a-real-password")


class UserError(ValueError):
    """A user request that cannot be done (duplicate e-mail, unknown role, ...)."""


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@") or len(email) > 320:
        raise UserError(f"not an e-mail address: {email!r}")
    return email


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_user(
    session: Session, email: str, role: str, *, password: str | None = None
) -> tuple[User, str]:
    """A new person and their API token (returned once; only its hash is stored)."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    email = normalise_email(email)
    if get_by_email(session, email) is not None:
        raise UserError(f"{email} already exists; use `supportbot user token {email}`")
    if password is not None and len(password) < 8:
        raise UserError("password must have at least 8 characters")
    token = new_api_token()
    user = User(
        email=email,
        role=role,
        password_hash=hash_password(password) if password else None,
        token_hash=hash_api_token(token),
    )
    session.add(user)
    session.flush()
    return user, token


def issue_token(session: Session, email: str) -> str:
    """Replace the person's API token (the old one stops working) and return the new one."""
    user = get_by_email(session, normalise_email(email))
    if user is None:
        raise UserError(f"no user {email}")
    token = new_api_token()
    user.token_hash = hash_api_token(token)
    session.flush()
    return token


def set_password(session: Session, email: str, password: str) -> None:
    user = get_by_email(session, normalise_email(email))
    if user is None:
        raise UserError(f"no user {email}")
    if len(password) < 8:
        raise UserError("password must have at least 8 characters")
    user.password_hash = hash_password(password)
    session.flush()


def get_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def user_by_token(session: Session, token: str) -> User | None:
    if not token:
        return None
    return session.scalar(select(User).where(User.token_hash == hash_api_token(token)))


def authenticate(
    session: Session, email: str, password: str, *, pool: HashPool | None = None
) -> User | None:
    """The person if the password is right; constant work whether or not the e-mail exists.

    With a ``pool`` (:class:`bot.people.throttle.HashPool`), the argon2 work waits for one of
    its places, which bounds the memory sign-ins take; it raises
    :class:`bot.people.throttle.HashBusy` when none is free in time."""
    with pool.slot() if pool is not None else nullcontext():
        # All inside the pool: a waiting sign-in holds no database connection, and the first
        # call's dummy hash (argon2, 64 MiB) is bounded too.
        user = get_by_email(session, email)
        stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or not user.password_hash:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
    return user


def has_role(user: User, role: str) -> bool:
    return ROLE_RANK.get(user.role, -1) >= ROLE_RANK[role]


# --- command line: `supportbot user ...` -------------------------------------------------------

cli = typer.Typer(help="Manage agents, leads and admins.", no_args_is_help=True)


@cli.command("add")
def add_command(
    email: str = typer.Argument(..., help="The person's e-mail address (their sign-in name)."),
    role: str = typer.Option("agent", "--role", help="agent | lead | admin"),
    password: bool = typer.Option(
        False, "--password", help="Prompt for a password to sign in to the pages."
    ),
) -> None:
    """Create a person and print their API token (shown once)."""
    secret = (
        cast(str, typer.prompt("Password", hide_input=True, confirmation_prompt=True))
        if password
        else None
    )
    with _session() as session:
        try:
            user, token = create_user(session, email, role, password=secret)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"created {user.role} {user.email}")
    typer.echo(token)


@cli.command("token")
def token_command(email: str = typer.Argument(..., help="Whose token to replace.")) -> None:
    """Issue a new API token (the old one stops working) and print it."""
    with _session() as session:
        try:
            token = issue_token(session, email)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(token)


@cli.command("password")
def password_command(email: str = typer.Argument(..., help="Whose password to set.")) -> None:
    """Set a person's sign-in password (prompted)."""
    secret = cast(str, typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    with _session() as session:
        try:
            set_password(session, email, secret)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"password set for {email}")


@cli.command("unlock")
def unlock_command(
    email: str = typer.Argument(..., help="Whose sign-in to unlock (the address as typed)."),
) -> None:
    """Lift a sign-in lockout: the account's wrong passwords so far no longer count."""
    from bot.people.throttle import unlock

    with _session() as session:
        forgiven = unlock(session, email)
    typer.echo(f"unlocked {email.strip().lower()} ({forgiven} recent wrong password(s) forgiven)")


@contextmanager
def _session() -> Iterator[Session]:
    """One committed transaction on the configured database (schema upgraded first)."""
    from bot.core.db import make_engine, make_session_factory, transaction
    from bot.core.migrate import upgrade_database
    from bot.core.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    try:
        upgrade_database(engine)
        with transaction(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()
