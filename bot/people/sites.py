"""Sites that embed the widget, and the customers their pages vouch for.

A site (``supportbot site add ORIGIN``) is an origin allowed to open the chat socket plus an
identity secret. Its pages may name the signed-in customer (``data-user-id`` and friends) with
``data-user-hash`` = hex HMAC-SHA256(secret, user id), computed on the site's server
(docs/widget.md, "Known customers"). :func:`identify` turns what a ``hello`` carried into a
:class:`Customer`: verified when the hash is right, otherwise unverified, or nobody at all when
the site requires verification. Only verified customers get their earlier conversations.

Plain functions over a ``Session`` plus the ``supportbot site ...`` commands.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.models import Conversation, Message, Site
from bot.people.identity import user_hash_ok

MAX_USER_ID_CHARS = 255
MAX_NAME_CHARS = 200
MAX_EMAIL_CHARS = 320


class SiteError(ValueError):
    """A site request that cannot be done (bad origin, duplicate, unknown site)."""


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, as a browser sends it in ``Origin``."""
    text = origin.strip().rstrip("/").lower()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise SiteError(f"not an origin (scheme://host[:port]): {origin!r}")
    return f"{parts.scheme}://{parts.netloc}"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def add_site(session: Session, origin: str, *, require_verification: bool = False) -> Site:
    """Register a site with a fresh identity secret."""
    origin = normalise_origin(origin)
    if site_by_origin(session, origin) is not None:
        raise SiteError(f"{origin} is already registered; see `supportbot site secret {origin}`")
    site = Site(origin=origin, secret=new_secret(), require_verification=require_verification)
    session.add(site)
    session.flush()
    return site


def site_by_origin(session: Session, origin: str | None) -> Site | None:
    if not origin:
        return None
    try:
        normalised = normalise_origin(origin)
    except SiteError:
        return None
    return session.scalar(select(Site).where(Site.origin == normalised))


def list_sites(session: Session) -> list[Site]:
    return list(session.scalars(select(Site).order_by(Site.origin)))


def _require(session: Session, origin: str) -> Site:
    site = site_by_origin(session, origin)
    if site is None:
        raise SiteError(f"no site {origin}")
    return site


def remove_site(session: Session, origin: str) -> None:
    """Forget a site: its origin may no longer open the chat, its hashes prove nothing.
    Its conversations stay (they lose the link to the site)."""
    session.delete(_require(session, origin))
    session.flush()


def rotate_secret(session: Session, origin: str) -> Site:
    """A new secret: every hash made with the old one stops proving anything at once."""
    site = _require(session, origin)
    site.secret = new_secret()
    session.flush()
    return site


def set_require_verification(session: Session, origin: str, required: bool) -> Site:
    site = _require(session, origin)
    site.require_verification = required
    session.flush()
    return site


# --- customers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    """Who a chat socket speaks for, as far as the page could prove it."""

    site_id: int | None
    id: str | None
    name: str | None
    email: str | None
    verified: bool


ANONYMOUS = Customer(site_id=None, id=None, name=None, email=None, verified=False)


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()[:limit]
    return value or None


def identify(
    session: Session,
    origin: str | None,
    *,
    user_id: str | None,
    name: str | None,
    email: str | None,
    supplied_hash: str | None,
) -> Customer:
    """What a ``hello``'s ``user`` is worth on the site at ``origin``.

    Verified when the site exists and the hash proves the id. A wrong or missing hash is never
    an error: on a site that requires verification the socket is simply anonymous (no identity,
    no history); elsewhere the page's name and e-mail are kept, marked unverified, and give
    access to nothing.
    """
    site = site_by_origin(session, origin)
    user_id = _clean(user_id, MAX_USER_ID_CHARS)
    site_id = site.id if site is not None else None
    if user_id is None:
        return Customer(site_id, None, None, None, False)
    if site is not None and user_hash_ok(site.secret, user_id, supplied_hash):
        return Customer(
            site_id, user_id, _clean(name, MAX_NAME_CHARS), _clean(email, MAX_EMAIL_CHARS), True
        )
    if site is not None and site.require_verification:
        return Customer(site_id, None, None, None, False)
    return Customer(
        site_id, user_id, _clean(name, MAX_NAME_CHARS), _clean(email, MAX_EMAIL_CHARS), False
    )


def attach_customer(
    conversation: Conversation, customer: Customer, *, locale: str | None = None
) -> None:
    """Record on the conversation who its customer is (and their language)."""
    if locale:
        conversation.locale = locale
    if customer.site_id is not None:
        conversation.site_id = customer.site_id
    if customer.id is None:
        return
    if conversation.customer_verified and not customer.verified:
        return  # an unproven claim never overwrites a proven one
    conversation.customer_id = customer.id
    conversation.customer_name = customer.name or conversation.customer_name
    conversation.customer_email = customer.email or conversation.customer_email
    conversation.customer_verified = customer.verified


def customer_conversations(
    session: Session, site_id: int, customer_id: str, *, limit: int = 20
) -> list[Conversation]:
    """The verified customer's conversations on the site, most recently active first."""
    return list(
        session.scalars(
            select(Conversation)
            .where(
                Conversation.site_id == site_id,
                Conversation.customer_id == customer_id,
                Conversation.customer_verified.is_(True),
            )
            .order_by(Conversation.updated_at.desc())
            .limit(limit)
        )
    )


def latest_open_conversation(
    session: Session, site_id: int, customer_id: str, *, active_since: datetime
) -> Conversation | None:
    """The verified customer's most recent conversation that is not resolved and was active
    since ``active_since``: what a hello without ``conversation_id`` resumes."""
    return session.scalar(
        select(Conversation)
        .where(
            Conversation.site_id == site_id,
            Conversation.customer_id == customer_id,
            Conversation.customer_verified.is_(True),
            Conversation.state != "resolved",
            Conversation.updated_at >= active_since,
        )
        .order_by(Conversation.updated_at.desc())
        .limit(1)
    )


def last_message_text(session: Session, conversation_id: str) -> str | None:
    text = session.scalar(
        select(Message.text)
        .where(Message.conversation_id == conversation_id, Message.role != "system")
        .order_by(Message.seq.desc())
        .limit(1)
    )
    return text[:200] if text else None


# --- command line: `supportbot site ...` -------------------------------------------------------

cli = typer.Typer(
    help="Manage the sites that embed the widget and their identity secrets.",
    no_args_is_help=True,
)


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@cli.command("add")
def add_command(
    origin: str = typer.Argument(..., help="The site's origin, e.g. https://www.example.com"),
    require_verification: bool = typer.Option(
        False,
        "--require-verification",
        help="Chats without a valid user hash stay anonymous (no identity, no history).",
    ),
) -> None:
    """Register a site: its origin may open the chat; prints its identity secret."""
    with _session() as session:
        try:
            site = add_site(session, origin, require_verification=require_verification)
        except SiteError as exc:
            raise _fail(exc) from None
        typer.echo(f"added {site.origin} (require verification: {site.require_verification})")
        typer.echo(site.secret)


@cli.command("list")
def list_command() -> None:
    """The registered sites (secrets are not shown)."""
    with _session() as session:
        for site in list_sites(session):
            flag = "require-verification" if site.require_verification else "optional"
            typer.echo(f"{site.origin}\t{flag}")


@cli.command("remove")
def remove_command(origin: str = typer.Argument(..., help="The site's origin.")) -> None:
    """Forget a site: its origin may no longer open the chat."""
    with _session() as session:
        try:
            remove_site(session, origin)
        except SiteError as exc:
            raise _fail(exc) from None
    typer.echo(f"removed {origin}")


@cli.command("secret")
def secret_command(
    origin: str = typer.Argument(..., help="The site's origin."),
    rotate: bool = typer.Option(
        False, "--rotate", help="Replace the secret; hashes made with the old one stop working."
    ),
) -> None:
    """Print the site's identity secret (for its server's configuration), or rotate it."""
    with _session() as session:
        try:
            site = rotate_secret(session, origin) if rotate else _require(session, origin)
        except SiteError as exc:
            raise _fail(exc) from None
        typer.echo(site.secret)


@cli.command("set")
def set_command(
    origin: str = typer.Argument(..., help="The site's origin."),
    require_verification: bool = typer.Option(
        ...,
        "--require-verification/--optional-verification",
        help="Whether chats without a valid user hash stay anonymous.",
    ),
) -> None:
    """Change whether the site requires verified customers."""
    with _session() as session:
        try:
            site = set_require_verification(session, origin, require_verification)
        except SiteError as exc:
            raise _fail(exc) from None
        typer.echo(f"{site.origin}: require verification {site.require_verification}")


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
