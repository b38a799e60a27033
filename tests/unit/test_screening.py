"""Article screening (``ingest.screening``): invisible characters go, requests for secrets and
instructions to an assistant are held however they are disguised, ordinary help text is not;
links to foreign hosts leave answers; an article's url must be a web address."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.loaders import Article, ArticleError, load_folder, parse_markdown, url_problem
from ingest.screening import (
    LINK_REMOVED,
    HeldArticle,
    LinkStream,
    clean_article,
    drop_foreign_links,
    hosts_of,
    load_held,
    record_held,
    screen_article,
    screen_text,
    strip_invisible,
)
from tests.conftest import KB_DIR
from tests.helpers.poison import CLEAN_LOOKALIKES, poisoned_articles


def test_zero_width_characters_are_stripped() -> None:
    text = "pass\u200bword \u202eevil\u202c re\u00adfund \ufeffok\u2060 \U000e0041tag"
    assert strip_invisible(text) == "password evil refund ok tag"
    article = Article(id="a", title="Re\u200bfunds", body="Refunds take 5\u200d days.")
    cleaned = clean_article(article)
    assert cleaned.title == "Refunds" and cleaned.body == "Refunds take 5 days."
    assert clean_article(cleaned) is cleaned  # nothing left to remove


@pytest.mark.parametrize("poison", poisoned_articles(), ids=lambda p: p.id)
def test_every_poisoned_variant_is_held_for_what_it_is(poison: object) -> None:
    from tests.helpers.poison import PoisonedArticle

    assert isinstance(poison, PoisonedArticle)
    article = parse_markdown(poison.markdown(), default_id=poison.id)
    cleaned, verdict = screen_article(article)
    assert verdict.held, poison.id
    assert poison.kind in {finding.kind for finding in verdict.findings}
    assert verdict.reason.startswith("held for review: ")
    assert "\u200b" not in cleaned.body


def test_ordinary_help_text_is_not_held() -> None:
    for sentence in CLEAN_LOOKALIKES:
        verdict = screen_text(sentence)
        assert not verdict.held, (sentence, verdict.reason)
    loaded = load_folder(KB_DIR)
    assert len(loaded.articles) > 20
    held = {a.id: screen_article(a)[1].reason for a in loaded.articles if screen_article(a)[1].held}
    assert held == {}, "the shipped knowledge base talks about passwords and cards, safely"


def test_negated_lists_are_advice_not_requests() -> None:
    advice = (
        "We will never ask you, by email or chat, to:\n\n- Give us your password\n- Share your CVC"
    )
    assert not screen_text(advice).held
    order = "To speed things up:\n\n- Give us your password\n- Share a CVC"
    assert screen_text(order).held


def test_a_code_shown_on_screen_or_a_secret_kept_back_is_not_a_request() -> None:
    """Device manuals read the PIN off a screen for a support agent and tell people how to share
    a network without its password; neither asks the customer to send us a secret."""
    assert not screen_text("When the PIN screen appears, provide the PIN number to the agent.").held
    assert not screen_text("Share your Wi-Fi network without giving out your password.").held
    assert screen_text("Email the full card number to billing@example.test.").held
    assert screen_text("Provide your PIN number to the agent in this chat.").held


def test_foreign_links_are_dropped_and_own_links_kept() -> None:
    allowed = hosts_of(["https://help.example.com/a", None, "/relative"])
    assert allowed == frozenset({"help.example.com"})
    text = (
        "See [our guide](https://help.example.com/guide) or [this](https://evil.test/x), "
        "visit www.evil.test/login, <https://evil.test/a>, [home](/returns), "
        "https://sub.help.example.com/ok and [run](javascript:alert(1))."
    )
    assert drop_foreign_links(text, allowed) == (
        f"See [our guide](https://help.example.com/guide) or this, visit {LINK_REMOVED}, "
        f"{LINK_REMOVED}, [home](/returns), https://sub.help.example.com/ok and run."
    )


def test_links_are_judged_whole_while_streaming() -> None:
    answer = "Go to [the form](https://evil.test/pay) now [1], or https://evil.test/x or /returns."
    stream = LinkStream(frozenset({"help.example.com"}))
    pieces = [stream.feed(answer[i : i + 3]) for i in range(0, len(answer), 3)]
    pieces.append(stream.flush())
    assert "".join(pieces) == drop_foreign_links(answer, {"help.example.com"})
    assert "evil.test" not in "".join(pieces)


def test_article_url_must_be_http_or_a_path(tmp_path: Path) -> None:
    assert url_problem("https://help.example.com/x") is None and url_problem("/x") is None
    for bad in ("javascript:alert(1)", "data:text/html,hi", "//evil.test/x", "ftp://x", "x y"):
        assert url_problem(bad), bad
    (tmp_path / "bad.md").write_text("---\nurl: javascript:alert(1)\n---\n\nSome text here.\n")
    loaded = load_folder(tmp_path)
    assert not loaded.articles
    assert "front matter 'url'" in loaded.failed[0].reason
    assert "http(s)" in loaded.failed[0].reason
    with pytest.raises(ArticleError):
        parse_markdown("---\nurl: data:x\n---\n\nText.\n", default_id="x")


def test_held_list_records_and_clears(tmp_path: Path) -> None:
    source = tmp_path / "a.md"
    source.write_text("x")
    record_held(tmp_path, [HeldArticle("a", str(source), "A", "held for review: x")], [])
    record_held(tmp_path, [HeldArticle("b", None, "B", "held for review: y")], [])
    assert [h.id for h in load_held(tmp_path)] == ["a", "b"]
    record_held(tmp_path, [], ["b"])
    assert [h.id for h in load_held(tmp_path)] == ["a"]
    source.unlink()  # its file is gone: nothing waits for review any more
    record_held(tmp_path, [], [])
    assert load_held(tmp_path) == []
