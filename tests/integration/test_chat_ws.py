"""/ws/chat over real sockets: a uvicorn server on a free port, the ``websockets`` client.

Each test names the promise it checks (docs/protocol.md): exactly-once delivery, resume without
loss or duplicates, streaming, and the guards on the public door.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bot.conversations.events import conversation_topic
from bot.conversations.frames import MessageFrame
from bot.conversations.store import append_message
from bot.core.db import transaction
from bot.core.models import CsatRating, Feedback, Message
from bot.core.schemas import Turn
from bot.core.settings import Settings
from tests.helpers.live_server import (
    ORIGIN,
    LiveServer,
    ScriptedAnswerer,
    chat_connect,
    hello,
    is_bot_message,
    postgres_schema,
    quiet,
    recv,
    recv_until,
    send,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def chat_settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        allowed_origins=[ORIGIN],
        _env_file=None,
        **overrides,
    )


@pytest.fixture
def answerer() -> ScriptedAnswerer:
    return ScriptedAnswerer(delay_s=0.01)


@pytest.fixture
def server(tmp_path: Path, answerer: ScriptedAnswerer) -> Iterator[LiveServer]:
    with LiveServer(chat_settings(tmp_path), answerer) as live:
        yield live


def count_messages(server: LiveServer, conversation_id: str, role: str | None = None) -> int:
    with server.ctx.sessions() as session:
        query = select(func.count()).where(Message.conversation_id == conversation_id)
        if role:
            query = query.where(Message.role == role)
        return int(session.scalar(query) or 0)


async def ask(ws: object, client_msg_id: str, text: str) -> list[dict[str, object]]:
    await send(ws, {"type": "message", "client_msg_id": client_msg_id, "text": text})  # type: ignore[arg-type]
    return await recv_until(ws, is_bot_message)  # type: ignore[arg-type]


async def test_question_gets_ack_then_deltas_then_message_with_sources(server: LiveServer) -> None:
    async with chat_connect(server.url) as ws:
        welcome = await hello(ws)
        assert welcome["type"] == "welcome" and welcome["state"] == "bot"
        assert welcome["resume_token"] and welcome["conversation_id"]
        frames = await ask(ws, "m1", "Can I return a parcel?")
    kinds = [frame["type"] for frame in frames]
    assert kinds[0] == "ack" and frames[0]["seq"] == 1 and frames[0]["duplicate"] is False
    assert "typing" in kinds and kinds.index("typing") < kinds.index("delta")
    deltas = [frame for frame in frames if frame["type"] == "delta"]
    assert [d["text"] for d in deltas] == ["Returns are ", "free within ", "30 days."]
    assert all(d["reply_to"] == 1 for d in deltas)
    final = frames[-1]
    assert final["seq"] == 2 and final["reply_to"] == 1
    assert final["text"] == "Returns are free within 30 days."
    assert final["sources"][0]["article_id"] == "returns/return-policy"


async def test_resend_of_same_client_msg_id_is_stored_and_answered_once(
    server: LiveServer, answerer: ScriptedAnswerer
) -> None:
    async with chat_connect(server.url) as ws:
        conversation_id = (await hello(ws))["conversation_id"]
        first = await ask(ws, "same-id", "Can I return a parcel?")
        await send(ws, {"type": "message", "client_msg_id": "same-id", "text": "Can I return?"})
        again = await recv(ws)
        assert again == {"type": "ack", "client_msg_id": "same-id", "seq": 1, "duplicate": True}
        assert await quiet(ws, 0.5) == []  # no second answer
    assert first[0]["seq"] == 1
    server.wait_idle()
    assert count_messages(server, conversation_id, "customer") == 1
    assert count_messages(server, conversation_id, "bot") == 1
    assert answerer.questions == ["Can I return a parcel?"]


async def test_drop_between_send_and_ack_then_resend_is_exactly_once(
    server: LiveServer, answerer: ScriptedAnswerer
) -> None:
    async with chat_connect(server.url) as ws:
        welcome = await hello(ws)
        await send(ws, {"type": "message", "client_msg_id": "flaky-1", "text": "Where is it?"})
    # The socket is gone before the ack was read. Reconnect, resume, resend.
    async with chat_connect(server.url) as ws:
        resumed = await hello(
            ws,
            conversation_id=welcome["conversation_id"],
            resume_token=welcome["resume_token"],
            last_seq=0,
        )
        assert resumed["type"] == "welcome" and resumed["resumed"] is True
        await send(ws, {"type": "message", "client_msg_id": "flaky-1", "text": "Where is it?"})
        frames = await recv_until(ws, lambda f: f["type"] == "ack")
        ack = frames[-1]
        assert ack["seq"] == 1 and ack["duplicate"] is True
        if not any(is_bot_message(f) for f in frames):  # answered before the resume, or not
            frames += await recv_until(ws, is_bot_message)
        everything = frames + await quiet(ws, 0.5)
    server.wait_idle()
    seqs = [f["seq"] for f in everything if f["type"] == "message"]
    assert len(seqs) == len(set(seqs)), "a message was delivered twice"
    assert count_messages(server, welcome["conversation_id"], "customer") == 1
    assert count_messages(server, welcome["conversation_id"], "bot") == 1
    assert answerer.questions == ["Where is it?"]


@pytest.mark.parametrize("answerer", [ScriptedAnswerer([f"w{i} " for i in range(8)], delay_s=0.1)])
async def test_drop_mid_stream_then_resume_replays_the_full_answer_in_order(
    server: LiveServer, answerer: ScriptedAnswerer
) -> None:
    async with chat_connect(server.url) as ws:
        welcome = await hello(ws)
        await send(ws, {"type": "message", "client_msg_id": "q1", "text": "Tell me"})
        frames = await recv_until(ws, lambda f: f["type"] == "delta")
        ack_seq = frames[0]["seq"]
    server.wait_idle()  # the answer finished with nobody listening, and was stored
    async with chat_connect(server.url) as ws:
        await hello(
            ws,
            conversation_id=welcome["conversation_id"],
            resume_token=welcome["resume_token"],
            last_seq=ack_seq,
        )
        replay = await recv_until(ws, is_bot_message)
        assert await quiet(ws, 0.3) == []
    assert [f["type"] for f in replay] == ["message"]
    assert replay[0]["text"] == "".join(f"w{i} " for i in range(8))
    assert replay[0]["reply_to"] == ack_seq


@pytest.mark.parametrize("answerer", [ScriptedAnswerer([f"w{i} " for i in range(10)], delay_s=0.1)])
async def test_resume_while_the_answer_streams_gets_the_rest_live_exactly_once(
    server: LiveServer, answerer: ScriptedAnswerer
) -> None:
    async with chat_connect(server.url) as ws:
        welcome = await hello(ws)
        await send(ws, {"type": "message", "client_msg_id": "q1", "text": "Tell me"})
        await recv_until(ws, lambda f: f["type"] == "delta")
    async with chat_connect(server.url) as ws:
        await hello(
            ws,
            conversation_id=welcome["conversation_id"],
            resume_token=welcome["resume_token"],
            last_seq=0,
        )
        frames = await recv_until(ws, is_bot_message)
        frames += await quiet(ws, 0.5)
    messages = [f for f in frames if f["type"] == "message"]
    assert [m["seq"] for m in messages] == [1, 2]
    assert messages[1]["text"] == "".join(f"w{i} " for i in range(10))


async def test_wrong_or_foreign_resume_token_is_refused_without_history(
    server: LiveServer,
) -> None:
    async with chat_connect(server.url) as a, chat_connect(server.url) as b:
        conv_a = await hello(a)
        conv_b = await hello(b)
        await ask(a, "secret", "My address is 1 Secret Street")
        async with chat_connect(server.url) as intruder:
            for token in (conv_b["resume_token"], "made-up-token", None):
                refused = await hello(
                    intruder, conversation_id=conv_a["conversation_id"], resume_token=token
                )
                assert refused["type"] == "error" and refused["code"] == "resume_failed"
            # Nothing from conversation A leaks to the refused socket, now or later.
            await ask(a, "more", "Another question")
            assert await quiet(intruder, 0.5) == []
            # The socket stays usable: a fresh conversation can still be opened on it.
            fresh = await hello(intruder)
            assert fresh["type"] == "welcome"
            assert fresh["conversation_id"] not in (
                conv_a["conversation_id"],
                conv_b["conversation_id"],
            )


async def test_origin_not_on_the_allow_list_is_refused_at_the_handshake(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with chat_connect(server.url, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with chat_connect(server.url) as ws:  # the allowed origin still gets in
        assert (await hello(ws))["type"] == "welcome"


async def test_oversize_frame_closes_with_1009(server: LiveServer) -> None:
    async with chat_connect(server.url) as ws:
        await hello(ws)
        big = "x" * (server.settings.chat_max_frame_bytes + 1)
        await send(ws, {"type": "message", "client_msg_id": "big", "text": big})
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await recv(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_long_message_gets_an_error_and_the_socket_stays(server: LiveServer) -> None:
    async with chat_connect(server.url) as ws:
        await hello(ws)
        text = "y" * (server.settings.chat_max_message_chars + 1)
        await send(ws, {"type": "message", "client_msg_id": "long", "text": text})
        error = await recv(ws)
        assert error["code"] == "message_too_long" and error["client_msg_id"] == "long"
        frames = await ask(ws, "ok", "Can I return a parcel?")
        assert frames[0]["type"] == "ack" and frames[0]["seq"] == 1


GARBAGE: list[str | bytes] = [
    "not json",
    "{",
    "[]",
    "42",
    "null",
    '"hello"',
    "{}",
    '{"type": "nope"}',
    '{"type": 7}',
    '{"type": "message"}',
    '{"type": "message", "client_msg_id": "", "text": "hi"}',
    '{"type": "message", "client_msg_id": "x", "text": 5}',
    '{"type": "feedback", "seq": -1, "helpful": true}',
    '{"type": "feedback", "seq": 1, "helpful": "maybe"}',
    '{"type": "csat", "score": 9}',
    '{"type": "hello", "last_seq": -5}',
    '{"type": "hello", "conversation_id": "abc"}',
    b"\xff\xfe binary",
    "\u0000\u0001",
    '{"type": "message", "client_msg_id": "' + "z" * 200 + '", "text": "hi"}',
]


async def test_200_garbage_frames_get_error_frames_and_the_next_question_is_answered(
    server: LiveServer,
) -> None:
    async with chat_connect(server.url) as ws:
        await hello(ws)
        for i in range(200):
            junk = GARBAGE[i % len(GARBAGE)]
            await ws.send(junk)
        errors = [await recv(ws) for _ in range(200)]
        assert all(frame["type"] == "error" for frame in errors)
        codes = {frame["code"] for frame in errors}
        assert {"invalid_json", "unknown_type", "invalid_frame", "already_open"} <= codes
        frames = await ask(ws, "real", "Can I return a parcel?")
        assert frames[0] == {"type": "ack", "client_msg_id": "real", "seq": 1, "duplicate": False}
        assert frames[-1]["text"] == "Returns are free within 30 days."


async def test_frames_before_hello_are_refused(server: LiveServer) -> None:
    async with chat_connect(server.url) as ws:
        await send(ws, {"type": "message", "client_msg_id": "early", "text": "hi"})
        error = await recv(ws)
        assert error["code"] == "hello_required" and error["client_msg_id"] == "early"
        assert (await hello(ws))["type"] == "welcome"


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_store_survives_a_server_restart(
    tmp_path: Path, answerer: ScriptedAnswerer, database: str
) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(postgres_schema()) if database == "postgres" else None
        await _converse_restart_resume(chat_settings(tmp_path, database_url=url), answerer)


async def _converse_restart_resume(settings: Settings, answerer: ScriptedAnswerer) -> None:
    with LiveServer(settings, answerer) as first:
        async with chat_connect(first.url) as ws:
            welcome = await hello(ws)
            before = await ask(ws, "a", "Can I return a parcel?")
        first.wait_idle()
    with LiveServer(settings, answerer) as second:
        async with chat_connect(second.url) as ws:
            resumed = await hello(
                ws,
                conversation_id=welcome["conversation_id"],
                resume_token=welcome["resume_token"],
                last_seq=0,
            )
            assert resumed["type"] == "welcome" and resumed["last_seq"] == 2
            replay = [await recv(ws), await recv(ws)]
            assert [(m["seq"], m["role"]) for m in replay] == [(1, "customer"), (2, "bot")]
            assert replay[1]["text"] == before[-1]["text"]
            after = await ask(ws, "b", "And exchanges?")
            assert after[0]["seq"] == 3 and after[-1]["seq"] == 4


async def test_question_stored_but_never_answered_is_answered_on_resend(
    server: LiveServer, answerer: ScriptedAnswerer
) -> None:
    """Regression: a process that died between storing a question and answering it left the
    question unanswered forever, because the resend was acked as a duplicate and dropped."""
    async with chat_connect(server.url) as ws:
        welcome = await hello(ws)
    conversation_id = welcome["conversation_id"]
    with transaction(server.ctx.sessions) as session:  # what the dead process had committed
        append_message(
            session, conversation_id, role="customer", text="Lost one?", client_msg_id="c1"
        )
    async with chat_connect(server.url) as ws:
        await hello(
            ws,
            conversation_id=conversation_id,
            resume_token=welcome["resume_token"],
            last_seq=1,
        )
        frames = await ask(ws, "c1", "Lost one?")
        # The resume itself starts the answer (issue #12), so the resend's ack may come after
        # the typing indicator, or after the answer; it is a duplicate either way.
        if not any(f["type"] == "ack" for f in frames):
            frames.append(await recv(ws))
        acks = [f for f in frames if f["type"] == "ack"]
        assert acks == [{"type": "ack", "client_msg_id": "c1", "seq": 1, "duplicate": True}]
        assert frames[-1]["reply_to"] == 1
        await send(ws, {"type": "message", "client_msg_id": "c1", "text": "Lost one?"})
        assert (await recv(ws))["duplicate"] is True
        assert await quiet(ws, 0.5) == []  # answered once, not again
    server.wait_idle()
    assert count_messages(server, conversation_id, "bot") == 1
    assert answerer.questions == ["Lost one?"]


async def test_feedback_and_csat_are_stored(server: LiveServer) -> None:
    async with chat_connect(server.url) as ws:
        conversation_id = (await hello(ws))["conversation_id"]
        frames = await ask(ws, "q", "Can I return a parcel?")
        bot_seq = frames[-1]["seq"]
        await send(ws, {"type": "feedback", "seq": 1, "helpful": True})  # a customer message
        error = await recv(ws)
        assert error["code"] == "unknown_message"
        await send(ws, {"type": "feedback", "seq": bot_seq, "helpful": False})
        await send(ws, {"type": "feedback", "seq": bot_seq, "helpful": True})  # changed mind
        await send(ws, {"type": "csat", "score": 4, "comment": " quick and clear "})
        await quiet(ws, 0.3)
    deadline = time.monotonic() + 5
    while True:
        with server.ctx.sessions() as session:
            feedback = session.scalars(
                select(Feedback).where(Feedback.conversation_id == conversation_id)
            ).all()
            csat = session.scalars(
                select(CsatRating).where(CsatRating.conversation_id == conversation_id)
            ).all()
            if csat or time.monotonic() > deadline:
                break
        await asyncio.sleep(0.05)
    assert [(f.message_seq, f.helpful) for f in feedback] == [(bot_seq, True)]
    assert [(c.score, c.comment) for c in csat] == [(4, "quick and clear")]


async def test_messages_from_other_parties_arrive_once_live_and_on_replay(
    server: LiveServer,
) -> None:
    async with chat_connect(server.url) as ws:
        welcome = await hello(ws)
        conversation_id = welcome["conversation_id"]
        await ask(ws, "q", "Can I return a parcel?")
        with transaction(server.ctx.sessions) as session:
            message, _ = append_message(
                session, conversation_id, role="agent", text="Hi, Sam here.", author="Sam"
            )
            frame = MessageFrame.from_message(message).dump()
        topic = conversation_topic(conversation_id)
        server.ctx.events.publish(topic, frame)
        server.ctx.events.publish(topic, frame)  # a duplicate event must not reach the customer
        live = await quiet(ws, 0.5)
        assert [(f["seq"], f["role"], f.get("author")) for f in live] == [(3, "agent", "Sam")]
    async with chat_connect(server.url) as ws:
        await hello(
            ws,
            conversation_id=conversation_id,
            resume_token=welcome["resume_token"],
            last_seq=2,
        )
        server.ctx.events.publish(topic, frame)  # late event after the replay: dropped
        replay = await quiet(ws, 0.5)
        assert [(f["type"], f["seq"]) for f in replay] == [("message", 3)]


async def test_message_rate_limit_per_connection(
    tmp_path: Path, answerer: ScriptedAnswerer
) -> None:
    settings = chat_settings(
        tmp_path, chat_rate_messages_burst=2, chat_rate_messages_per_minute=1.0
    )
    with LiveServer(settings, answerer) as live:
        async with chat_connect(live.url) as ws:
            await hello(ws)
            for i in range(3):
                await send(ws, {"type": "message", "client_msg_id": f"r{i}", "text": "hi"})
            frames = await recv_until(ws, lambda f: f["type"] == "error", timeout=10)
            error = frames[-1]
            assert error["code"] == "rate_limited" and error["client_msg_id"] == "r2"
            assert error["retry_after_ms"] > 1000
        live.wait_idle()


async def test_per_ip_rate_limit_spans_sockets(tmp_path: Path, answerer: ScriptedAnswerer) -> None:
    settings = chat_settings(tmp_path, chat_rate_ip_burst=3, chat_rate_ip_per_minute=1.0)
    with LiveServer(settings, answerer) as live:
        codes = []
        for i in range(4):
            async with chat_connect(live.url) as ws:
                await hello(ws)
                await send(ws, {"type": "message", "client_msg_id": "m", "text": f"hi {i}"})
                codes.append((await recv(ws))["type"])
        assert codes == ["ack", "ack", "ack", "error"]
        live.wait_idle()


async def test_real_extractive_answerer_streams_a_cited_answer(
    tmp_path: Path, embedder: object
) -> None:
    """The default answerer on a small KB, end to end through the socket."""
    helpers_kb = pytest.importorskip("tests.helpers.kb")
    settings = chat_settings(tmp_path)
    helpers_kb.write_kb(settings, embedder)
    with LiveServer(settings) as live:
        async with chat_connect(live.url) as ws:
            await hello(ws)
            frames = await ask(ws, "q", "How long do I have to return an item?")
    deltas = "".join(str(f["text"]) for f in frames if f["type"] == "delta")
    final = frames[-1]
    assert deltas == final["text"]
    assert final["sources"] and final["sources"][0]["article_id"] == "returns/return-policy"
    assert "30 days" in str(final["text"])


class BrokenAnswerer(ScriptedAnswerer):
    """Streams two pieces, then fails, as a remote LLM can."""

    async def stream(self, question: str, history: Sequence[Turn] = ()) -> AsyncIterator[Any]:
        self.questions.append(question)
        yield "Refunds are "
        yield "paid within "
        raise RuntimeError("the model server went away")


@pytest.mark.parametrize("answerer", [BrokenAnswerer()])
async def test_an_answerer_failing_mid_stream_hands_over_and_stores_what_was_streamed(
    server: LiveServer, answerer: BrokenAnswerer
) -> None:
    async with chat_connect(server.url) as ws:
        await hello(ws)
        frames = await ask(ws, "q", "How long do refunds take?")
        frames += await quiet(ws, 0.5)
    bot = next(f for f in frames if is_bot_message(f))
    streamed = "".join(str(f["text"]) for f in frames if f["type"] == "delta")
    assert bot["text"] == streamed and bot["text"].startswith("Refunds are paid within ")
    assert "something went wrong on our side" in bot["text"]
    states = [f for f in frames if f["type"] == "state"]
    assert states and (states[0]["state"], states[0]["reason"]) == ("awaiting_human", "error")


class FailingAnswerer(ScriptedAnswerer):
    """Fails before the first word, as a vector store that went away does."""

    async def stream(self, question: str, history: Sequence[Turn] = ()) -> AsyncIterator[Any]:
        self.questions.append(question)
        raise RuntimeError("the vector store went away")
        yield  # an async generator, like every answerer


@pytest.mark.parametrize("answerer", [FailingAnswerer()])
async def test_a_failing_answerer_says_something_went_wrong_and_hands_over_with_reason_error(
    server: LiveServer, answerer: FailingAnswerer
) -> None:
    async with chat_connect(server.url) as ws:
        welcome = await hello(ws)
        frames = await ask(ws, "q", "How long do refunds take?")
        frames += await quiet(ws, 0.5)
    bot = next(f for f in frames if is_bot_message(f))
    assert str(bot["text"]).startswith("Sorry, something went wrong on our side")
    assert not [f for f in frames if f["type"] == "delta"]
    states = [f for f in frames if f["type"] == "state"]
    assert states and (states[0]["state"], states[0]["reason"]) == ("awaiting_human", "error")
    server.wait_idle()
    with server.ctx.sessions() as session:
        stored = session.scalars(
            select(Message).where(
                Message.conversation_id == welcome["conversation_id"], Message.role == "bot"
            )
        ).one()
    assert (stored.escalate, stored.confidence) == (True, 0.0)


async def test_handoff_request_moves_to_a_person_and_the_bot_only_answers_what_it_is_sure_of(
    server: LiveServer, answerer: ScriptedAnswerer
) -> None:
    async with chat_connect(server.url) as ws:
        welcome = await hello(ws)
        await send(ws, {"type": "handoff_request"})
        frames = await recv_until(ws, lambda f: f["type"] == "state")
        frames += await quiet(ws, 0.3)
        assert frames[0]["state"] == "awaiting_human"
        assert any(f["type"] == "message" and f["role"] == "system" for f in frames)
        await send(ws, {"type": "message", "client_msg_id": "after", "text": "Anyone there?"})
        ack = await recv(ws)
        assert ack["type"] == "ack"
        # While the conversation waits, the bot answers only what it is sure of (the scripted
        # answerer always is, 0.9), marked as the bot's, and the conversation stays queued
        # (tests/integration/test_bot_while_waiting.py has the rule in full).
        server.wait_idle()
        later = await quiet(ws, 0.5)
        assert not [f for f in later if f["type"] in ("state", "delta")]
        assert all("still in the queue" in f["text"] for f in later if is_bot_message(f))
    assert answerer.questions == ["Anyone there?"]
    assert count_messages(server, welcome["conversation_id"], "bot") == 1


async def test_a_chat_socket_takes_no_thread_pool_hop_for_its_dependencies(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI runs a plain ``def`` dependency in its thread pool: the context dependency is
    ``async`` so a chat socket's handshake does not pay a thread hop to read an attribute."""
    import fastapi.dependencies.utils as fastapi_deps

    hops: list[str] = []
    original = fastapi_deps.run_in_threadpool

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(fastapi_deps, "run_in_threadpool", counting)
    async with chat_connect(server.url) as ws:
        await hello(ws)
        frames = await ask(ws, "m1", "Can I return a parcel?")
    assert frames[-1]["type"] == "message"
    assert hops == []
