"""Loaders: front matter, template includes, HTML, plain text, ids and titles, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.loaders import (
    MAX_FILE_BYTES,
    Article,
    ArticleError,
    SkipFile,
    clean_markdown,
    discover_files,
    find_includes_dir,
    iter_headings,
    load_article,
    load_folder,
    parse_markdown,
)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- Markdown and front matter -----------------------------------------------------------------


def test_front_matter_fields_become_the_article(tmp_path: Path) -> None:
    path = write(
        tmp_path / "billing" / "refunds.md",
        "---\nid: billing/refunds-v2\ntitle: How refunds work\nurl: https://help.example/r\n"
        "tags: [billing, refunds]\nlanguage: en\nvisibility: Internal\n---\n\n"
        "# How refunds work\n\nMoney goes back to the card you paid with.\n",
    )
    article = load_article(path, tmp_path)
    assert article.id == "billing/refunds-v2"
    assert article.title == "How refunds work"
    assert article.url == "https://help.example/r"
    assert article.tags == ("billing", "refunds")
    assert article.language == "en"
    assert article.visibility == "internal"
    assert article.source_path == str(path.resolve())
    assert "Money goes back" in article.body


def test_defaults_id_from_path_and_title_from_first_heading(tmp_path: Path) -> None:
    path = write(tmp_path / "account" / "reset-password.md", "# Reset it\n\nClick the link.\n")
    article = load_article(path, tmp_path)
    assert article.id == "account/reset-password"
    assert article.title == "Reset it"
    assert article.url is None and article.tags == () and article.visibility == "public"


def test_title_falls_back_to_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path / "opening-hours.md", "We are open from 9 to 5.\n")
    assert load_article(path, tmp_path).title == "Opening hours"


def test_tags_may_be_a_comma_separated_string(tmp_path: Path) -> None:
    path = write(tmp_path / "a.md", "---\ntags: shipping, returns ,\n---\nText.\n")
    assert load_article(path, tmp_path).tags == ("shipping", "returns")


def test_content_hash_ignores_location_but_not_text() -> None:
    first = Article(id="a", title="T", body="Body", source_path="/x/a.md")
    moved = Article(id="a", title="T", body="Body", source_path="/y/a.md")
    edited = Article(id="a", title="T", body="Body!", source_path="/x/a.md")
    assert first.content_hash == moved.content_hash != edited.content_hash


def test_markdown_links_html_and_kramdown_attributes_become_plain_words() -> None:
    text = clean_markdown(
        'See [our settings](https://x.example/s){:target="_blank"} and '
        "![a diagram](img.png) or <https://x.example/help>.\n\n"
        "<p>Some <strong>HTML</strong> text &amp; more.</p>\n"
        "<ul><li>first</li><li>second</li></ul>\n\n"
        "| Plan | Price |\n|---|---|\n| Plus | **9.99** |\n<!-- hidden -->"
    )
    assert "See our settings and a diagram or https://x.example/help." in text
    assert "Some HTML text & more." in text
    assert "- first" in text and "- second" in text
    assert "| Plus | 9.99 |" in text
    assert "---" not in text and "hidden" not in text and "{:" not in text and "<" not in text


def test_headings_inside_code_fences_are_not_headings() -> None:
    body = "# Title\n\n```\n# not a heading\n```\n\n## Real\ntext"
    assert [(level, text) for _, level, text in iter_headings(body)] == [(1, "Title"), (2, "Real")]


def test_html_headings_inside_markdown_become_markdown_headings() -> None:
    text = clean_markdown("<h2 id='x'>Delivery <em>times</em></h2>\nThree days.")
    assert "## Delivery times" in text


# --- template tags -----------------------------------------------------------------------------


def make_jekyll_site(tmp_path: Path) -> Path:
    """A site shaped like duckduckgo-help-pages: _docs/ with _includes/ beside it."""
    write(
        tmp_path / "_includes" / "contact.md",
        "## Still need help?\n\nEmail {% include address.md %} any time.",
    )
    write(tmp_path / "_includes" / "address.md", "help@example.com")
    write(tmp_path / "_includes" / "loop.md", "again {% include loop.md %}")
    docs = tmp_path / "_docs"
    write(
        docs / "privacy" / "vpn.md",
        "---\ntitle: Using the VPN\ncategory: Privacy\n---\n\n"
        "Turn it on in [settings]({{ site.baseurl }}/settings/).\n\n"
        "{% if page.beta %}Beta only.{% endif %}\n"
        "{% include contact.md %}\n\n"
        "{% include missing-snippet.md %}\n"
        "This page is {{ page.title }}.\n",
    )
    write(docs / "privacy" / "loop.md", "---\ntitle: Loop\n---\nStart {% include loop.md %}\n")
    write(docs / "_defaults.md", "---\ntitle:\n---\n")
    return docs


def test_includes_resolve_from_the_includes_folder_beside_the_docs(tmp_path: Path) -> None:
    docs = make_jekyll_site(tmp_path)
    assert find_includes_dir(docs) == tmp_path / "_includes"
    article = load_article(docs / "privacy" / "vpn.md", docs, find_includes_dir(docs))
    assert article.id == "privacy/vpn"
    assert "Turn it on in settings." in article.body
    assert "## Still need help?" in article.body
    assert "Email help@example.com any time." in article.body  # nested include
    assert "This page is Using the VPN." in article.body
    assert "{%" not in article.body and "{{" not in article.body and "}}" not in article.body


def test_without_an_includes_folder_template_tags_are_stripped(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.md",
        "Intro {% include contact.md %} and {{ site.baseurl }}/x.\n{% for x in y %}{% endfor %}",
    )
    article = load_article(path, tmp_path, includes_dir=None)
    assert article.body == "Intro and /x."


def test_self_including_snippet_stops_at_the_depth_limit(tmp_path: Path) -> None:
    docs = make_jekyll_site(tmp_path)
    article = load_article(docs / "privacy" / "loop.md", docs, tmp_path / "_includes")
    assert article.body.startswith("Start again again")
    assert "{%" not in article.body


def test_raw_blocks_keep_their_literal_text() -> None:
    article = parse_markdown("Use {% raw %}{{ name }}{% endraw %} in templates.", default_id="a")
    assert article.body == "Use {{ name }} in templates."


def test_redirect_stubs_are_skipped_not_failed(tmp_path: Path) -> None:
    path = write(tmp_path / "old.md", "---\nlayout: redirect\nredirect: /new\n---\n")
    with pytest.raises(SkipFile, match="redirect"):
        load_article(path, tmp_path)


# --- HTML and text -----------------------------------------------------------------------------


def test_html_keeps_title_headings_and_text_and_drops_scripts_and_navigation(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "faq" / "delivery.html",
        """<!doctype html><html lang="en"><head><title>Delivery FAQ | Shop</title>
        <link rel="canonical" href="https://shop.example/faq/delivery">
        <meta name="keywords" content="delivery, shipping">
        <script>var tracking = 1;</script><style>.x{color:red}</style></head>
        <body><nav><a href="/">Home</a> <a href="/faq">FAQ</a></nav>
        <main><h1>Delivery FAQ</h1><p>We ship <b>every</b> weekday.</p>
        <h2>Costs</h2><ul><li>Standard: free</li><li>Express: 9.95</li></ul>
        <table><tr><th>Zone</th><th>Days</th></tr><tr><td>EU</td><td>3</td></tr></table>
        </main><footer>Copyright Shop</footer></body></html>""",
    )
    article = load_article(path, tmp_path)
    assert article.id == "faq/delivery"
    assert article.title == "Delivery FAQ | Shop"
    assert article.url == "https://shop.example/faq/delivery"
    assert article.tags == ("delivery", "shipping")
    assert article.language == "en"
    assert article.body.split("\n\n") == [
        "# Delivery FAQ",
        "We ship every weekday.",
        "## Costs",
        "- Standard: free",
        "- Express: 9.95",
        "Zone | Days",
        "EU | 3",
    ]
    for noise in ("tracking", "color", "Home", "Copyright"):
        assert noise not in article.body


def test_plain_text_is_titled_after_its_file(tmp_path: Path) -> None:
    path = write(tmp_path / "gift-cards.txt", "Gift cards never expire.\n\n\n\nThey work online.\n")
    article = load_article(path, tmp_path)
    assert article.title == "Gift cards"
    assert article.body == "Gift cards never expire.\n\nThey work online."


# --- bad files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("latin1.md", "Caf\xe9 opening hours".encode("latin-1"), "not valid UTF-8"),
        ("unclosed.md", "---\ntitle: Oops\n\nNo closing line.\n", "front matter is not closed"),
        ("bad-yaml.md", "---\ntitle: [unclosed\n---\nText.\n", "not valid YAML"),
        ("list.md", "---\n- a\n- b\n---\nText.\n", "must be a mapping"),
        ("empty.md", "", "empty"),
        ("blank.txt", "  \n\n", "empty"),
        ("only-front-matter.md", "---\ntitle: Nothing here\n---\n\n", "empty"),
        ("only-template.md", "{% include gone.md %}\n{{ site.baseurl }}", "empty"),
        ("only-headings.md", "# Index\n\n###### Learn more\n{% include nav.md %}", "only headings"),
        ("bad-title.md", "---\ntitle: [a, b]\n---\nText.\n", "'title' must be text"),
        ("notes.docx", "binary", "unsupported file type"),
    ],
)
def test_bad_files_raise_a_clear_reason(
    tmp_path: Path, name: str, content: str | bytes, reason: str
) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(ArticleError) as caught:
        load_article(path, tmp_path)
    assert reason in caught.value.reason
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)


def test_oversized_files_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "dump.md", "word " * (MAX_FILE_BYTES // 5 + 10))
    with pytest.raises(ArticleError, match="too large"):
        load_article(path, tmp_path)


def test_a_folder_loads_the_good_files_and_collects_the_bad(tmp_path: Path) -> None:
    docs = make_jekyll_site(tmp_path)
    write(docs / "broken.md", b"\xff\xfe not utf-8")
    write(docs / "old.md", "---\nlayout: redirect\nredirect: /\n---\n")
    write(docs / ".hidden.md", "Editor backup.")
    write(docs / "image.png", b"\x89PNG")
    loaded = load_folder(docs)
    assert sorted(a.id for a in loaded.articles) == ["privacy/loop", "privacy/vpn"]
    assert [Path(e.path).name for e in loaded.failed] == ["broken.md"]
    assert [Path(e.path).name for e in loaded.skipped] == ["old.md"]
    # includes were found on their own, beside _docs
    vpn = next(a for a in loaded.articles if a.id == "privacy/vpn")
    assert "help@example.com" in vpn.body


def test_discovery_skips_underscore_and_dot_paths(tmp_path: Path) -> None:
    for name in ("a.md", "b/c.html", "d.txt", "_drafts/e.md", ".git/f.md", "_g.md", "h.json"):
        write(tmp_path / name, "x")
    found = [p.relative_to(tmp_path).as_posix() for p in discover_files(tmp_path)]
    assert found == ["a.md", "b/c.html", "d.txt"]


def test_a_missing_folder_is_a_failure_not_an_empty_knowledge_base(tmp_path: Path) -> None:
    loaded = load_folder(tmp_path / "nope")
    assert loaded.articles == []
    assert loaded.failed[0].reason == "no such file or directory"


def test_ids_are_relative_to_the_given_id_root(tmp_path: Path) -> None:
    write(tmp_path / "kb" / "billing" / "refunds.md", "Refund text.")
    loaded = load_folder(tmp_path / "kb" / "billing", id_root=tmp_path / "kb")
    assert [a.id for a in loaded.articles] == ["billing/refunds"]
