"""``POST /api/ask`` through the real app (lifespan, Chroma, embedder) with TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.core.settings import Settings
from bot.web.app import create_app
from ingest.embedder import Embedder
from tests.helpers.kb import write_kb


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("ask") / "data"
    settings = Settings(data_dir=data_dir, max_question_chars=2000, _env_file=None)  # type: ignore[call-arg]
    write_kb(settings, embedder)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_answer_contract(client: TestClient) -> None:
    response = client.post("/api/ask", json={"question": "How much does express delivery cost?"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"answer", "escalate", "reason", "confidence", "sources", "suggestions"}
    assert body["escalate"] is False and body["reason"] is None
    assert body["suggestions"] == []  # "which of these?" only when the evidence is split
    assert 0.0 <= body["confidence"] <= 1.0
    assert "9.95" in body["answer"]
    source = body["sources"][0]
    assert set(source) == {"article_id", "title", "url", "score"}
    assert source["article_id"] == "shipping/delivery-times"
    assert source["url"] == "https://help.example.com/shipping/delivery-times"
    assert 0.0 <= source["score"] <= 1.0


def test_history_is_used_for_follow_ups(client: TestClient) -> None:
    body = client.post(
        "/api/ask",
        json={
            "question": "and what if the email never arrives?",
            "history": [
                {"role": "user", "content": "I forgot my password"},
                {"role": "assistant", "content": "Select Forgot password on the sign-in page."},
            ],
        },
    ).json()
    assert body["sources"][0]["article_id"] == "account/reset-password"


def test_off_topic_escalates(client: TestClient) -> None:
    body = client.post("/api/ask", json={"question": "Who won the 1998 football world cup?"}).json()
    assert body["escalate"] is True
    assert body["reason"] in ("no_knowledge", "low_confidence")


def test_a_failing_vector_store_gives_an_honest_handover_not_a_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the vector store went away")

    answerer = client.app.state.ctx.answerer  # type: ignore[attr-defined]
    monkeypatch.setattr(answerer.retriever, "search", broken)
    response = client.post("/api/ask", json={"question": "How much does express delivery cost?"})
    assert response.status_code == 200
    body = response.json()
    assert (body["escalate"], body["reason"], body["sources"]) == (True, "error", [])
    assert "something went wrong" in body["answer"] and "support team" in body["answer"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "Field required"),
        ({"question": ""}, "question must not be empty"),
        ({"question": "   \n "}, "question must not be empty"),
        ({"question": 42}, "Input should be a valid string"),
        ({"question": "hi", "history": [{"role": "robot", "content": "x"}]}, "'user' or"),
        ({"question": "hi", "history": "not a list"}, "valid list"),
    ],
)
def test_bad_bodies_get_422_with_a_clear_message(
    client: TestClient, payload: object, message: str
) -> None:
    response = client.post("/api/ask", json=payload)
    assert response.status_code == 422
    assert message in str(response.json()["detail"])


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/api/ask", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_ten_thousand_characters_is_refused(client: TestClient) -> None:
    response = client.post("/api/ask", json={"question": "x" * 10_000})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "question"]
    assert "too long: 10000 characters, the limit is 2000" in detail["msg"]


def test_openapi_documents_the_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/api/ask" in schema["paths"]
    assert "AnswerResult" in schema["components"]["schemas"]


def test_healthz_reports_when_the_warm_up_is_done(client: TestClient) -> None:
    import time

    deadline = time.monotonic() + 60
    body = client.get("/healthz").json()
    while not body["warm"] and time.monotonic() < deadline:
        time.sleep(0.2)
        body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["warm"] is True
    answerer = client.app.state.ctx.answerer  # type: ignore[attr-defined]
    assert answerer.unit_vectors._vectors, "the warm-up embedded the articles' sentences"
