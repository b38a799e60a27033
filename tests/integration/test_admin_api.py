"""The admin API (``/api/admin/...``) against a real server: publishing reaches answers within
seconds over ``/api/ask`` and the chat socket, leaves no stale chunks, is audited and can be
undone; bad input and the wrong people are refused."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.core.db import transaction
from bot.core.models import ArticleVersion
from bot.core.settings import Settings
from bot.people.users import create_user
from ingest.embedder import Embedder
from ingest.pipeline import index_paths
from tests.helpers.kb import ARTICLES, to_markdown
from tests.helpers.live_server import (
    ORIGIN,
    LiveServer,
    chat_connect,
    hello,
    is_bot_message,
    recv_until,
    send,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PASSWORD = "correct horse battery"
ANSWERABLE_WITHIN_S = 10.0


@dataclass
class Admin:
    server: LiveServer
    http: httpx.Client
    tokens: dict[str, str]

    @property
    def kb(self) -> Path:
        return self.server.settings.kb_path

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, url, headers=self.headers(), **kwargs)

    def chunks(self, article_id: str) -> dict[str, str]:
        got = self.server.ctx.collection.get(
            where={"article_id": article_id}, include=["documents"]
        )
        return dict(zip(got["ids"], got["documents"] or [], strict=True))

    def all_documents(self) -> list[str]:
        got = self.server.ctx.collection.get(include=["documents"])
        return [doc or "" for doc in got["documents"] or []]


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Admin]:
    root = tmp_path_factory.mktemp("admin")
    kb = root / "kb"
    for article in ARTICLES:
        path = kb / f"{article.article_id}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_markdown(article))
    settings = Settings(  # type: ignore[call-arg]
        data_dir=root / "data",
        kb_path=kb,
        allowed_origins=[ORIGIN],
        kb_max_article_bytes=20_000,
        _env_file=None,
    )
    index_paths([kb], settings, embedder)
    server = LiveServer(settings)
    settings.port = server.port
    with server:
        tokens = {}
        with transaction(server.ctx.sessions) as session:
            for role in ("agent", "lead", "admin"):
                _, token = create_user(session, f"{role}@example.com", role, password=PASSWORD)
                tokens[role] = token
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as http:
            yield Admin(server, http, tokens)


def unique(word: str) -> str:
    """A made-up word no other article contains, so answers to it can only cite one article."""
    return f"{word}{uuid.uuid4().hex[:6]}"


def cites(body: dict[str, Any], article_id: str) -> bool:
    return bool(body["sources"]) and body["sources"][0]["article_id"] == article_id


def ask_until(admin: Admin, question: str, done: Any, within: float = ANSWERABLE_WITHIN_S) -> float:
    """Seconds until ``/api/ask`` gives an answer for which ``done(body)`` holds."""
    started = time.monotonic()
    while True:
        response = admin.http.post("/api/ask", json={"question": question})
        assert response.status_code == 200, response.text
        if done(response.json()):
            return time.monotonic() - started
        assert time.monotonic() - started < within, response.json()
        time.sleep(0.2)


async def chat_until(admin: Admin, question: str, done: Any) -> float:
    """The same over the chat socket: one conversation, the question asked until it holds."""
    started = time.monotonic()
    async with chat_connect(admin.server.url) as ws:
        await hello(ws)
        n = 0
        while True:
            n += 1
            await send(ws, {"type": "message", "client_msg_id": f"q{n}", "text": question})
            frames = await recv_until(ws, is_bot_message, timeout=30)
            if done(frames[-1]):
                return time.monotonic() - started
            assert time.monotonic() - started < ANSWERABLE_WITHIN_S, frames[-1]
            await asyncio.sleep(0.2)


def article_body(fact: str) -> str:
    return f"{fact}\n\n## Care\nRinse the part with warm water after every use."


# --- publishing reaches answers -------------------------------------------------------------------


async def test_create_is_answerable_at_once_over_ask_and_chat(admin: Admin) -> None:
    word = unique("Quibblex")
    fact = f"The {word} blender must be descaled every nine days with lemon juice."
    started = time.monotonic()
    response = admin.request(
        "POST",
        "/api/admin/articles",
        json={
            "title": f"Descaling the {word} blender",
            "body": article_body(fact),
            "url": "https://help.example.com/blender",
            "tags": ["blenders", "care"],
            "language": "en",
        },
    )
    assert response.status_code == 201, response.text
    article = response.json()
    article_id = f"descaling-the-{word.lower()}-blender"
    assert set(article) == {
        "id", "title", "body", "url", "tags", "visibility", "language", "path", "version",
        "updated_at", "updated_by", "indexed", "chunks",
    }  # fmt: skip
    assert article["id"] == article_id and article["path"] == f"{article_id}.md"
    assert article["version"] == 1 and article["updated_by"] == "admin@example.com"
    assert article["indexed"] is True and article["chunks"] >= 1
    assert article["visibility"] == "public" and article["tags"] == ["blenders", "care"]
    text = (admin.kb / f"{article_id}.md").read_text()
    assert text.startswith(f"---\nid: {article_id}\ntitle: Descaling the {word} blender\n")
    assert "tags:\n- blenders\n- care\nvisibility: public\nlanguage: en\n---\n" in text

    question = f"How often should I descale the {word} blender?"
    latency = ask_until(admin, question, lambda body: cites(body, article_id))
    published = time.monotonic() - started
    print(
        f"\npublish -> answerable over /api/ask: {published:.2f} s (after the POST: {latency:.2f})"
    )
    assert published < ANSWERABLE_WITHIN_S
    chat = await chat_until(admin, question, lambda frame: cites(frame, article_id))
    assert chat < ANSWERABLE_WITHIN_S

    listed = admin.request("GET", "/api/admin/articles", params={"q": word}).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == article_id
    assert set(listed) == {"items", "total", "page", "per_page"}
    assert admin.request("GET", f"/api/admin/articles/{article_id}").json() == article


async def test_edit_replaces_the_old_text_everywhere(admin: Admin) -> None:
    old_word, new_word = unique("Frobnitz"), unique("Gizmotron")
    long_body = "\n\n".join(
        f"## Section {i}\nThe {old_word} widget section {i} says: press the red button {i} times."
        for i in range(4)
    )
    created = admin.request(
        "POST",
        "/api/admin/articles",
        json={"id": "devices/widget", "title": "The widget", "body": long_body},
    )
    assert created.status_code == 201, created.text
    assert any(old_word in text for text in admin.chunks("devices/widget").values())

    new_fact = f"The {new_word} widget is reset by holding the power button for ten seconds."
    edited = admin.request(
        "PUT",
        "/api/admin/articles/devices/widget",
        json={"title": "Resetting the widget", "body": new_fact, "version": 1},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2 and edited.json()["title"] == "Resetting the widget"
    ask_until(
        admin,
        f"How do I reset the {new_word} widget?",
        lambda body: cites(body, "devices/widget") and "ten seconds" in body["answer"],
    )
    await chat_until(
        admin,
        f"How do I reset the {new_word} widget?",
        lambda frame: "ten seconds" in frame["text"],
    )
    chunks = admin.chunks("devices/widget")
    assert list(chunks) == ["devices/widget#0"], "the old version's extra chunks are gone"
    assert not any(old_word in text for text in admin.all_documents()), "stale chunk text"
    lexical = admin.server.ctx.retriever.search(old_word, mode="bm25")
    assert all(hit.article_id != "devices/widget" for hit in lexical)

    stale = admin.request(
        "PUT",
        "/api/admin/articles/devices/widget",
        json={"title": "Overwrite", "body": "Someone else's edit.", "version": 1},
    )
    assert stale.status_code == 409 and "version 2" in stale.json()["detail"]


async def test_delete_and_restore(admin: Admin) -> None:
    word = unique("Snorkelix")
    fact = f"The {word} snorkel mask fits children from six years old."
    question = f"From what age does the {word} snorkel mask fit?"
    article_id = "toys/snorkel"
    created = admin.request(
        "POST",
        "/api/admin/articles",
        json={"id": article_id, "title": f"{word} mask", "body": fact},
    )
    assert created.status_code == 201
    ask_until(admin, question, lambda body: cites(body, article_id))

    deleted = admin.request("DELETE", f"/api/admin/articles/{article_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert not (admin.kb / "toys/snorkel.md").exists()
    assert admin.chunks(article_id) == {}
    assert not any(word in text for text in admin.all_documents())
    ask_until(
        admin,
        question,
        lambda body: not any(s["article_id"] == article_id for s in body["sources"]),
    )
    await chat_until(
        admin, question, lambda frame: all(s["article_id"] != article_id for s in frame["sources"])
    )
    assert admin.request("GET", f"/api/admin/articles/{article_id}").status_code == 404
    assert admin.request("DELETE", f"/api/admin/articles/{article_id}").status_code == 404

    versions = admin.request("GET", f"/api/admin/articles/{article_id}/versions").json()
    assert [(v["version"], v["action"]) for v in versions] == [(2, "delete"), (1, "create")]
    assert set(versions[0]) == {"version", "action", "at", "by", "title"}
    gone = admin.request("GET", f"/api/admin/articles/{article_id}/versions/2").json()
    assert gone["body"] is None
    refused = admin.request("POST", f"/api/admin/articles/{article_id}/versions/2/restore")
    assert refused.status_code == 409

    restored = admin.request("POST", f"/api/admin/articles/{article_id}/versions/1/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["body"] == fact and restored.json()["version"] == 3
    assert (admin.kb / "toys/snorkel.md").exists()
    ask_until(admin, question, lambda body: cites(body, article_id))
    await chat_until(admin, question, lambda frame: cites(frame, article_id))
    missing = admin.request("POST", f"/api/admin/articles/{article_id}/versions/99/restore")
    assert missing.status_code == 404


async def test_upload_publishes_good_files_and_fails_bad_ones_alone(admin: Admin) -> None:
    md_word, html_word, txt_word = unique("Plumbus"), unique("Dinglehopper"), unique("Grommet")
    files = [
        (
            "plumbus.md",
            f"---\nid: uploads/plumbus\ntitle: Cleaning the {md_word}\ntags: [home]\n---\n"
            f"Clean the {md_word} with a soft brush once a month.\n".encode(),
        ),
        (
            "Dinglehopper Guide.html",
            (
                f"<html><head><title>The {html_word}</title></head><body><main><h2>Use</h2>"
                f"<p>The {html_word} combs hair and is made of silver.</p></main></body></html>"
            ).encode(),
        ),
        ("grommet.txt", f"A {txt_word} must be replaced every two years.\n".encode()),
        ("broken.md", b"---\ntitle: [unclosed\n---\nText.\n"),
        ("slides.pdf", b"%PDF-1.4"),
        ("latin1.txt", "caf\xe9 au lait".encode("latin-1")),
        ("huge.md", b"# Huge\n\n" + b"word " * 5_000),
        ("empty.md", b"---\ntitle: Nothing\n---\n\n"),
        ("escape.md", b"---\nid: ../../outside\ntitle: Escape\n---\nNo.\n"),
    ]
    response = admin.http.post(
        "/api/admin/articles/upload",
        headers=admin.headers(),
        files=[("files", (name, data)) for name, data in files],
    )
    assert response.status_code == 200, response.text
    results = {r["filename"]: r for r in response.json()["results"]}
    assert list(results) == [name for name, _ in files]
    assert results["plumbus.md"] == {
        "filename": "plumbus.md", "id": "uploads/plumbus", "status": "created", "error": None,
    }  # fmt: skip
    assert results["Dinglehopper Guide.html"]["id"] == "dinglehopper-guide"
    assert results["Dinglehopper Guide.html"]["status"] == "created"
    assert results["grommet.txt"]["status"] == "created"
    expected_errors = {
        "broken.md": "front matter is not valid YAML",
        "slides.pdf": "unsupported file type '.pdf'",
        "latin1.txt": "not valid UTF-8",
        "huge.md": "the limit is 20000",
        "empty.md": "empty",
        "escape.md": "'.' and '..' are not allowed",
    }
    for name, message in expected_errors.items():
        assert results[name]["status"] == "failed", results[name]
        assert message in results[name]["error"], results[name]
    assert not (admin.kb.parent / "outside.md").exists()

    ask_until(admin, f"How do I clean the {md_word}?", lambda b: cites(b, "uploads/plumbus"))
    ask_until(admin, f"What is the {html_word} made of?", lambda b: cites(b, "dinglehopper-guide"))
    ask_until(admin, f"When must a {txt_word} be replaced?", lambda b: cites(b, "grommet"))
    await chat_until(
        admin,
        f"What is the {html_word} made of?",
        lambda frame: cites(frame, "dinglehopper-guide"),
    )
    html_file = (admin.kb / "dinglehopper-guide.md").read_text()
    assert html_file.startswith("---\nid: dinglehopper-guide\n") and "## Use" in html_file

    again = admin.http.post(
        "/api/admin/articles/upload",
        headers=admin.headers(),
        files=[("files", ("plumbus.md", files[0][1].replace(b"once a month", b"every week")))],
    )
    assert again.json()["results"][0]["status"] == "updated"
    ask_until(admin, f"How often do I clean the {md_word}?", lambda b: "every week" in b["answer"])


# --- audit ---------------------------------------------------------------------------------------


def test_every_change_is_audited_and_a_hand_written_file_is_kept_first(admin: Admin) -> None:
    article_id = "shipping/delivery-times"  # written as a file, never through the API
    original = (admin.kb / f"{article_id}.md").read_text()
    current = admin.request("GET", f"/api/admin/articles/{article_id}").json()
    assert current["version"] == 0 and current["updated_by"] is None
    edited = admin.request(
        "PUT",
        f"/api/admin/articles/{article_id}",
        json={**current, "body": current["body"].replace("4.95", "5.95")},
    )
    assert edited.status_code == 200, edited.text
    versions = admin.request("GET", f"/api/admin/articles/{article_id}/versions").json()
    assert [(v["action"], v["by"]) for v in versions] == [
        ("update", "admin@example.com"),
        ("file", None),
    ]
    kept = admin.request("GET", f"/api/admin/articles/{article_id}/versions/1").json()
    assert "4.95" in kept["body"] and kept["title"] == "Delivery times and shipping costs"
    with admin.server.ctx.sessions() as session:
        rows = session.scalars(
            select(ArticleVersion)
            .where(ArticleVersion.article_id == article_id)
            .order_by(ArticleVersion.version)
        ).all()
        assert rows[0].content == original
        assert rows[1].previous_hash == rows[0].content_hash
        assert rows[1].content_hash != rows[0].content_hash
        assert rows[1].actor == "admin@example.com" and rows[1].created_at is not None

    # An edit on disk (someone's editor) is kept as a version of its own before the next one.
    path = admin.kb / f"{article_id}.md"
    path.write_text(path.read_text().replace("9.95", "12.95"))
    restored = admin.request("POST", f"/api/admin/articles/{article_id}/versions/1/restore")
    assert restored.status_code == 200
    assert (admin.kb / f"{article_id}.md").read_text() == original
    versions = admin.request("GET", f"/api/admin/articles/{article_id}/versions").json()
    assert [v["action"] for v in versions] == ["restore", "file", "update", "file"]
    on_disk = admin.request("GET", f"/api/admin/articles/{article_id}/versions/3").json()
    assert "12.95" in on_disk["body"]
    ask_until(admin, "How much does standard delivery cost?", lambda b: "4.95" in b["answer"])


# --- validation ----------------------------------------------------------------------------------

VALID = {"title": "A title", "body": "Some text that says something."}


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"body": "x"}, 422, "Field required"),
        ({**VALID, "title": "  "}, 422, "title must not be empty"),
        ({**VALID, "title": "two\nlines"}, 422, "title must be one line"),
        ({**VALID, "body": " \n\n "}, 422, "body must not be empty"),
        ({**VALID, "id": "../escape"}, 422, "'.' and '..' are not allowed"),
        ({**VALID, "id": "a/../../b"}, 422, "'.' and '..' are not allowed"),
        ({**VALID, "id": "/etc/passwd"}, 422, "no leading '/'"),
        ({**VALID, "id": "a\\b"}, 422, "backslashes are not allowed"),
        ({**VALID, "id": "a//b"}, 422, "separated by single '/'"),
        ({**VALID, "id": "with space"}, 422, "separated by single '/'"),
        ({**VALID, "id": "ünïcode"}, 422, "separated by single '/'"),
        ({**VALID, "id": ".hidden"}, 422, "each starting with a letter or digit"),
        ({**VALID, "id": "faq/versions"}, 422, "reserved"),
        ({**VALID, "id": "faq.md"}, 422, "leave the file extension out"),
        ({**VALID, "id": "x" * 201}, 422, "longer than 200"),
        ({**VALID, "url": "javascript:alert(1)"}, 422, "url must be an http(s) address"),
        ({**VALID, "tags": ["a,b"]}, 422, "without commas"),
        ({**VALID, "visibility": "secret"}, 422, "'public' or 'internal'"),
        ({**VALID, "language": "english!"}, 422, "language tag"),
        ({"title": "!!!", "body": "x"}, 422, "give an id"),
        ({**VALID, "body": "x" * 20_001}, 413, "the limit is 20000"),
        ({**VALID, "id": "returns/return-policy"}, 409, "exists"),
    ],
)
def test_bad_articles_are_refused_with_a_reason(
    admin: Admin, payload: dict[str, Any], status: int, message: str
) -> None:
    response = admin.request("POST", "/api/admin/articles", json=payload)
    assert response.status_code == status, response.text
    assert message in str(response.json()["detail"])


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/admin/articles/..%2F..%2Fetc%2Fpasswd", 422),
        ("PUT", "/api/admin/articles/..%2Foutside", 422),
        ("DELETE", "/api/admin/articles/%2Fetc%2Fpasswd", 422),
        ("GET", "/api/admin/articles/a%5Cb/versions", 422),
        ("GET", "/api/admin/articles/no/such/article", 404),
        ("GET", "/api/admin/articles/returns/return-policy/versions/x", 422),
        ("PUT", "/api/admin/articles/no-such-article", 404),
    ],
)
def test_path_escapes_in_the_url_are_refused(
    admin: Admin, method: str, path: str, status: int
) -> None:
    response = admin.request(method, path, json=VALID)
    assert response.status_code == status, response.text


def test_a_symlink_out_of_the_folder_is_refused(admin: Admin, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (admin.kb / "linked").symlink_to(outside, target_is_directory=True)
    try:
        response = admin.request("POST", "/api/admin/articles", json={**VALID, "id": "linked/x"})
        assert response.status_code == 422 and "outside the articles folder" in response.text
        assert list(outside.iterdir()) == []
    finally:
        (admin.kb / "linked").unlink()


def test_a_failed_index_leaves_the_previous_file_and_index(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    article_id = "billing/gift-cards"
    before_file = (admin.kb / f"{article_id}.md").read_bytes()
    before_chunks = admin.chunks(article_id)

    def broken_index(self: Any, articles: Any) -> Any:
        raise RuntimeError("the vector store is down")

    from bot.knowledge.publishing import KnowledgeBatch

    real_index = KnowledgeBatch.index
    calls: list[int] = []

    def index_once_broken(self: Any, articles: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            return broken_index(self, articles)
        return real_index(self, articles)

    monkeypatch.setattr(KnowledgeBatch, "index", index_once_broken)
    current = admin.request("GET", f"/api/admin/articles/{article_id}").json()
    response = admin.request(
        "PUT", f"/api/admin/articles/{article_id}", json={**current, "body": "Gift cards expire."}
    )
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert "nothing was changed" in detail and "the vector store is down" in detail
    assert (admin.kb / f"{article_id}.md").read_bytes() == before_file
    assert admin.chunks(article_id) == before_chunks
    versions = admin.request("GET", f"/api/admin/articles/{article_id}/versions").json()
    assert versions == [], "a failed publish records no version"


def test_listing_filters_and_pages(admin: Admin) -> None:
    everything = admin.request("GET", "/api/admin/articles", params={"per_page": 200}).json()
    ids = [item["id"] for item in everything["items"]]
    assert ids == sorted(ids) and everything["total"] == len(ids) >= len(ARTICLES)
    internal = next(item for item in everything["items"] if item["id"] == "internal/agent-macros")
    assert internal["visibility"] == "internal"
    page2 = admin.request("GET", "/api/admin/articles", params={"per_page": 2, "page": 2}).json()
    assert [item["id"] for item in page2["items"]] == ids[2:4] and page2["page"] == 2
    by_body = admin.request("GET", "/api/admin/articles", params={"q": "SPAM FOLDER"}).json()
    assert [item["id"] for item in by_body["items"]] == ["account/reset-password"]
    created = admin.request(
        "POST", "/api/admin/articles", json={**VALID, "id": "tagged/one", "tags": ["Seasonal"]}
    )
    assert created.status_code == 201
    by_tag = admin.request("GET", "/api/admin/articles", params={"tag": "seasonal"}).json()
    assert [item["id"] for item in by_tag["items"]] == ["tagged/one"]
    assert admin.request("GET", "/api/admin/articles", params={"page": 0}).status_code == 422


def test_try_answers_as_the_bot_would_now(admin: Admin) -> None:
    response = admin.request(
        "POST", "/api/admin/try", json={"question": "How long do I have to return an item?"}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "answer",
        "escalate",
        "reason",
        "confidence",
        "sources",
        "suggestions",
        "passage",
    }
    assert body["sources"][0]["article_id"] == "returns/return-policy"
    assert "30 days" in body["passage"]
    ask = admin.http.post("/api/ask", json={"question": "How long do I have to return an item?"})
    assert ask.json()["answer"] == body["answer"]
    empty = admin.request("POST", "/api/admin/try", json={"question": "  "})
    assert empty.status_code == 422


# --- who may ------------------------------------------------------------------------------------


ROUTES = [
    ("GET", "/api/admin/articles"),
    ("POST", "/api/admin/articles"),
    ("POST", "/api/admin/articles/upload"),
    ("GET", "/api/admin/articles/returns/return-policy"),
    ("PUT", "/api/admin/articles/returns/return-policy"),
    ("DELETE", "/api/admin/articles/returns/return-policy"),
    ("GET", "/api/admin/articles/returns/return-policy/versions"),
    ("GET", "/api/admin/articles/returns/return-policy/versions/1"),
    ("POST", "/api/admin/articles/returns/return-policy/versions/1/restore"),
    ("POST", "/api/admin/try"),
    ("POST", "/api/admin/ingest"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_only_admins_may(admin: Admin, method: str, path: str) -> None:
    anonymous = admin.http.request(method, path, json=VALID)
    assert anonymous.status_code == 401
    for role in ("agent", "lead"):
        refused = admin.http.request(method, path, headers=admin.headers(role), json=VALID)
        assert refused.status_code == 403, (role, refused.text)
    assert (admin.kb / "returns/return-policy.md").exists()


def test_a_signed_in_page_needs_the_csrf_token(admin: Admin) -> None:
    base = str(admin.http.base_url)
    with httpx.Client(base_url=base, timeout=60) as browser:
        form = browser.get("/login")
        csrf_form = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf_form is not None
        signed_in = browser.post(
            "/login",
            data={
                "email": "admin@example.com",
                "password": PASSWORD,
                "csrf": csrf_form.group(1),
                "next": "/agent",
            },
        )
        assert signed_in.status_code in (200, 303)
        page = browser.get("/agent")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token is not None
        assert browser.get("/api/admin/articles").status_code == 200  # reads need no token
        payload = {**VALID, "id": "csrf/check"}
        missing = browser.post("/api/admin/articles", json=payload)
        assert missing.status_code == 403 and "CSRF" in missing.text
        wrong = browser.post("/api/admin/articles", json=payload, headers={"X-CSRF-Token": "x"})
        assert wrong.status_code == 403
        assert not (admin.kb / "csrf/check.md").exists()
        allowed = browser.post(
            "/api/admin/articles", json=payload, headers={"X-CSRF-Token": token.group(1)}
        )
        assert allowed.status_code == 201, allowed.text


def test_the_ingest_endpoint_accepts_the_local_token_and_checks_paths(admin: Admin) -> None:
    info_token = admin.server.ctx.service_token
    assert info_token
    local = {"X-Supportbot-Local-Token": info_token}
    relative = admin.http.post("/api/admin/ingest", json={"paths": ["kb"]}, headers=local)
    assert relative.status_code == 400 and "absolute" in relative.json()["detail"]
    nowhere = admin.http.post(
        "/api/admin/ingest", json={"paths": ["/no/such/place"]}, headers=local
    )
    assert nowhere.status_code == 400 and "not found" in nowhere.json()["detail"]
    wrong = admin.http.post(
        "/api/admin/ingest",
        json={"paths": [str(admin.kb)]},
        headers={**local, "X-Supportbot-Local-Token": "nope"},
    )
    assert wrong.status_code == 401
    with admin.http.stream(
        "POST", "/api/admin/ingest", json={"paths": [str(admin.kb)]}, headers=local
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert events[0]["type"] == "started" and events[-1]["type"] == "summary"
    assert any(event["type"] == "progress" for event in events)
    report = events[-1]["report"]
    assert report["failed"] == [] and "returns/return-policy" in report["unchanged"]
