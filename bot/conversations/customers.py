"""Known customers on the chat socket: who a ``hello`` speaks for, the conversation it opens,
and the customer's earlier conversations.

The identity rules are :mod:`bot.people.sites`' (a site's HMAC proves a user id); this module is
where they meet the conversation store: a verified customer's ``hello`` without
``conversation_id`` resumes their latest open conversation, on any device, with a signed
conversation token (:mod:`bot.people.identity`) because the conversation's own resume token is
stored only as a hash; and a token of either kind is accepted on resume.

Plain functions over a ``Session``; the chat socket (:mod:`bot.live.customer`) calls them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, bindparam, update

from bot.conversations import store
from bot.conversations.frames import ConversationSummary, HelloUser, WelcomeCustomer
from bot.core.clock import aware, utcnow
from bot.core.models import Conversation
from bot.people import sites
from bot.people.identity import conversation_token, is_conversation_token, read_conversation_token

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.core.settings import Settings


def identify(session: Session, origin: str | None, user: HelloUser | None) -> sites.Customer:
    """Who the ``hello`` speaks for on the site at ``origin`` (see
    :func:`bot.people.sites.identify`)."""
    if user is None:
        site = sites.site_by_origin(session, origin)
        return sites.Customer(site.id if site else None, None, None, None, False)
    return sites.identify(
        session, origin, user_id=user.id, name=user.name, email=user.email, supplied_hash=user.hash
    )


def welcome_customer(customer: sites.Customer) -> WelcomeCustomer | None:
    """The ``welcome`` frame's ``customer``: null when the page named nobody (or an unproven
    somebody on a site that requires proof)."""
    if customer.id is None:
        return None
    return WelcomeCustomer(name=customer.name, verified=customer.verified)


def resume_window(settings: Settings) -> timedelta:
    return timedelta(hours=settings.chat_resume_window_hours)


def signed_token(settings: Settings, conversation_id: str) -> str:
    """A conversation token valid for the resume window (renewed on every resume with one)."""
    return conversation_token(
        settings, conversation_id, valid_s=resume_window(settings).total_seconds()
    )


def verify_resume(
    session: Session,
    settings: Settings,
    conversation_id: str,
    token: str,
    *,
    now: datetime | None = None,
) -> Conversation | None:
    """The conversation when ``token`` opens it: its own resume token, or a signed conversation
    token for it (from a verified customer's other device, or an e-mailed link), within the
    resume window either way."""
    if not is_conversation_token(token):
        return store.verify_resume(
            session, conversation_id, token, max_age=resume_window(settings), now=now
        )
    claim = read_conversation_token(settings, token)
    if claim is None or claim.conversation_id != conversation_id:
        return None
    conversation = store.get_conversation(session, conversation_id)
    if conversation is None:
        return None
    if (now or utcnow()) - aware(conversation.updated_at) > resume_window(settings):
        return None
    return conversation


def may_resume(conversation: Conversation, customer: sites.Customer) -> bool:
    """A conversation of one verified customer is never resumed by another verified one (two
    people sharing a browser): the token alone is not enough then."""
    return not (
        conversation.customer_verified
        and customer.verified
        and conversation.customer_id is not None
        and conversation.customer_id != customer.id
    )


def latest_open(
    session: Session, settings: Settings, customer: sites.Customer, *, now: datetime | None = None
) -> Conversation | None:
    """The verified customer's latest open conversation, if any: what their ``hello`` without
    ``conversation_id`` resumes."""
    if not customer.verified or customer.site_id is None or customer.id is None:
        return None
    since = (now or utcnow()) - resume_window(settings)
    return sites.latest_open_conversation(
        session, customer.site_id, customer.id, active_since=since
    )


def attach(
    session: Session,
    conversation: Conversation,
    customer: sites.Customer,
    *,
    locale: str | None,
    now: datetime | None = None,
) -> None:
    """Record who the customer is and their language, and that they are here now."""
    sites.attach_customer(conversation, customer, locale=locale)
    conversation.customer_seen_at = now or utcnow()
    session.flush()


_conversations = cast(Table, Conversation.__table__)
_MARK_SEEN = (  # on the table, built once: it runs whenever chat sockets close
    update(_conversations)
    .where(_conversations.c.id.in_(bindparam("cids", expanding=True)))
    # Presence is not activity: the resume window still counts from the last message.
    .values(customer_seen_at=bindparam("at"), updated_at=_conversations.c.updated_at)
)


def mark_seen(session: Session, conversation_ids: list[str], now: datetime | None = None) -> None:
    """The customers of these conversations have a chat open now (or just closed it): replies
    by e-mail wait until they have been away for a while (:mod:`bot.conversations.outbox`)."""
    if not conversation_ids:
        return
    session.execute(_MARK_SEEN, {"cids": conversation_ids, "at": now or utcnow()})


def summaries(
    session: Session, settings: Settings, customer: sites.Customer
) -> list[ConversationSummary]:
    """The verified customer's conversations on their site, most recent first, each with a
    token to open it; nothing for anyone else."""
    if not customer.verified or customer.site_id is None or customer.id is None:
        return []
    found = []
    for conversation in sites.customer_conversations(session, customer.site_id, customer.id):
        found.append(
            ConversationSummary(
                conversation_id=conversation.id,
                resume_token=signed_token(settings, conversation.id),
                state=conversation.state,
                created_at=aware(conversation.created_at).isoformat(),
                updated_at=aware(conversation.updated_at).isoformat(),
                last_message=sites.last_message_text(session, conversation.id),
            )
        )
    return found
