"""Load help-center files (Markdown, HTML, plain text) into ``Article`` objects.

Every format ends up as the same thing: an ``Article`` whose ``body`` is clean text with Markdown
``#`` headings, so the chunker has one input shape and the headings survive as chunk context.

Markdown from static-site generators (Jekyll, Hugo, MkDocs) carries template tags: ``{% include
x.md %}`` is resolved from the site's ``_includes`` folder when there is one (the snippet is real
content, e.g. a "contact us" paragraph shared by many pages); every other ``{% %}`` tag and every
``{{ }}`` expression is removed, because unrendered template syntax is noise to an embedder and to
a customer reading a citation. Link targets, HTML tags and kramdown attributes go for the same
reason; the words stay.

A file that cannot be an article (invalid UTF-8, broken front matter, no text) raises
``ArticleError`` with a reason a person can act on; a file that is deliberately not an article (a
Jekyll redirect stub) raises ``SkipFile``. Callers index the rest.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
TEXT_SUFFIXES = frozenset({".txt"})
ARTICLE_SUFFIXES = MARKDOWN_SUFFIXES | HTML_SUFFIXES | TEXT_SUFFIXES
LEARNED_SIDECAR_SUFFIX = ".learned.jsonl"
"""An article's learned questions beside it (``billing/refunds.learned.jsonl``): not an article."""

MAX_FILE_BYTES = 2_000_000
"""Larger files are refused: an article is kilobytes; megabytes mean a data dump or a mistake."""

MAX_INCLUDE_DEPTH = 8
"""Includes may include includes; deeper nesting is a cycle or a mistake, and is cut off."""


class ArticleError(ValueError):
    """A file that should be an article but cannot be read as one."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class SkipFile(Exception):
    """A file that is deliberately not an article (e.g. a redirect stub)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class Article(BaseModel):
    """One help-center article, the unit of ingestion, deletion and citation."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    body: str = Field(description="Clean text with Markdown '#' headings.")
    url: str | None = None
    tags: tuple[str, ...] = ()
    language: str | None = None
    visibility: str = "public"
    source_path: str | None = Field(
        None, description="The file it came from; None for articles published through the API."
    )

    @field_validator("id")
    @classmethod
    def _clean_id(cls, value: str) -> str:
        cleaned = value.strip().strip("/")
        if not cleaned:
            raise ValueError("article id is empty")
        return cleaned

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, value: object) -> object:
        return _as_tags(value)

    @property
    def content_hash(self) -> str:
        """Hash of everything that ends up in the index (not where the file lies)."""
        payload = self.model_dump(exclude={"source_path"})
        encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(encoded).hexdigest()


def _as_tags(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[object] = list(value.split(","))
    elif isinstance(value, list | tuple | set):
        items = list(value)
    else:
        raise ValueError(f"tags must be a list or a comma-separated string, not {value!r}")
    return tuple(str(item).strip() for item in items if str(item).strip())


# --- reading files ------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """The file as text, or ``ArticleError`` saying why not (missing, too large, not UTF-8)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ArticleError(path, f"cannot read file: {exc.strerror or exc}") from exc
    if size > MAX_FILE_BYTES:
        raise ArticleError(path, f"file too large ({size} bytes; limit {MAX_FILE_BYTES})")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        raise ArticleError(
            path, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from exc


_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FRONT_MATTER_OPEN = re.compile(r"\A---[ \t]*\n")
_FRONT_MATTER_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)


def split_front_matter(text: str, path: Path | str = "<text>") -> tuple[dict[str, Any], str]:
    """Separate YAML front matter from the body; no front matter gives an empty mapping."""
    opening = _FRONT_MATTER_OPEN.match(text)
    if not opening:
        return {}, text
    closing = _FRONT_MATTER_CLOSE.search(text, opening.end())
    if closing is None:
        raise ArticleError(path, "front matter is not closed (no line '---' after the opening)")
    raw = text[opening.end() : closing.start()]
    try:
        data = yaml.load(raw, Loader=_YAML_LOADER) if raw.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ArticleError(path, f"front matter is not valid YAML{where}: {problem}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ArticleError(path, "front matter must be a mapping of 'key: value' lines")
    body = text[closing.end() :].lstrip("\n")
    return {str(key): value for key, value in data.items()}, body


# --- template tags ------------------------------------------------------------------------------

_INCLUDE_TAG = re.compile(
    r"\{%-?\s*(include|include_relative)\s+[\"']?([^\s\"'%]+)[\"']?[^%]*?-?%\}", re.IGNORECASE
)
_TEMPLATE_TAG = re.compile(r"\{%.*?%\}", re.DOTALL)
_TEMPLATE_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_TEMPLATE_EXPRESSION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.DOTALL)
_RAW_BLOCK = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.DOTALL)


def find_includes_dir(root: Path) -> Path | None:
    """The ``_includes`` folder of a Jekyll-style site: inside the KB root or beside it."""
    start = root if root.is_dir() else root.parent
    for candidate in (start / "_includes", start.parent / "_includes"):
        if candidate.is_dir():
            return candidate
    return None


def render_template_tags(
    text: str,
    *,
    includes_dir: Path | None,
    current_dir: Path | None = None,
    variables: Mapping[str, str] | None = None,
    _depth: int = 0,
) -> str:
    """Resolve includes, keep ``{% raw %}`` content, and drop every other template tag.

    ``{{ name }}`` becomes ``variables[name]`` when known (``page.title``), else nothing: for
    ``{{ site.baseurl }}`` inside a link nothing is the right answer, and a leftover ``{{ }}``
    would be worse than a missing word.
    """
    known = dict(variables or {})

    def include(match: re.Match[str]) -> str:
        kind, name = match.group(1).lower(), match.group(2)
        base = current_dir if kind == "include_relative" else includes_dir
        if base is None or _depth >= MAX_INCLUDE_DEPTH:
            return ""
        target = (base / name).resolve()
        if not target.is_file():
            return ""
        try:
            snippet = target.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            return ""
        _, snippet = split_front_matter(snippet, target)
        return render_template_tags(
            snippet.strip("\n"),
            includes_dir=includes_dir,
            current_dir=target.parent,
            variables=known,
            _depth=_depth + 1,
        )

    raw_blocks: list[str] = []

    def keep_raw(match: re.Match[str]) -> str:
        raw_blocks.append(match.group(1))
        return f"\x00RAW{len(raw_blocks) - 1}\x00"

    text = _RAW_BLOCK.sub(keep_raw, text)
    text = _INCLUDE_TAG.sub(include, text)
    text = _TEMPLATE_COMMENT.sub("", text)
    text = _TEMPLATE_TAG.sub("", text)
    text = _TEMPLATE_EXPRESSION.sub(lambda m: known.get(m.group(1).strip(), ""), text)
    for number, raw in enumerate(raw_blocks):
        text = text.replace(f"\x00RAW{number}\x00", raw)
    return text


# --- Markdown clean-up --------------------------------------------------------------------------

_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_KRAMDOWN_ATTRIBUTES = re.compile(r"\{::?[^}\n]*\}")
_HTML_HEADING = re.compile(r"<h([1-6])\b[^>]*>(.*?)</h\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_HTML_LIST_ITEM = re.compile(r"<li\b[^>]*>", re.IGNORECASE)
_HTML_BLOCK_EDGE = re.compile(
    r"</?(?:p|div|ul|ol|table|thead|tbody|tr|section|blockquote|figure|video)\b[^>]*>",
    re.IGNORECASE,
)
_HTML_CELL = re.compile(r"<t[dh]\b[^>]*>", re.IGNORECASE)
_HTML_DROP_BLOCK = re.compile(
    r"<(script|style|video|audio|iframe|svg)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL
)
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]*)?/?>")
_IMAGE = re.compile(r"!\[([^\]]*)\]\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)")
_REFERENCE_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s+\S+.*$", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_SETEXT = re.compile(r"^(?P<text>[^\n#>|\-*=\s][^\n]*)\n(?P<rule>=+|-+)[ \t]*$", re.MULTILINE)
_ATX_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BLANK_RUNS = re.compile(r"\n{3,}")


def clean_markdown(text: str) -> str:
    """Markdown (possibly with inline HTML) to clean text that keeps ``#`` headings and lists."""
    text = _HTML_COMMENT.sub("", text)
    text = _KRAMDOWN_ATTRIBUTES.sub("", text)
    text = _HTML_DROP_BLOCK.sub("", text)
    text = _HTML_HEADING.sub(
        lambda m: f"\n\n{'#' * int(m.group(1))} {_inline_text(m.group(2))}\n\n", text
    )
    text = _HTML_BREAK.sub("\n", text)
    text = _HTML_LIST_ITEM.sub("\n- ", text)
    text = _HTML_CELL.sub(" | ", text)
    text = _HTML_BLOCK_EDGE.sub("\n\n", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REFERENCE_LINK.sub(r"\1", text)
    text = _REFERENCE_DEFINITION.sub("", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _SETEXT.sub(
        lambda m: f"{'#' if m.group('rule')[0] == '=' else '##'} {m.group('text').strip()}", text
    )
    text = html.unescape(text).replace("\u00a0", " ").replace("\\_", "_")
    lines = [_tidy_line(line) for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


_INNER_SPACES = re.compile(r"(?<=\S)[ \t]{2,}")
_TABLE_RULE_CHARACTERS = frozenset("|-: \t")


def _tidy_line(line: str) -> str:
    stripped = line.rstrip()
    core = stripped.strip()
    # A list item whose text was only template output ("- " left over) carries nothing, and a
    # table's |---|---| rule is layout, not words.
    if core in {"-", "*", "|", "| |"}:
        return ""
    if "|" in core and "---" in core and set(core) <= _TABLE_RULE_CHARACTERS:
        return ""
    # Padding inside table rows and prose is layout; the words are what gets embedded.
    return _INNER_SPACES.sub(" ", stripped)


def _inline_text(fragment: str) -> str:
    return " ".join(_HTML_TAG.sub(" ", fragment).split())


def iter_headings(body: str) -> Iterator[tuple[int, int, str]]:
    """``(line_number, level, text)`` for each ATX heading outside fenced code."""
    in_fence = False
    for number, line in enumerate(body.split("\n")):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        match = _ATX_HEADING.match(line)
        if match:
            yield number, len(match.group(1)), match.group(2).strip()


# --- building articles --------------------------------------------------------------------------


def title_from_name(path: Path | str) -> str:
    """``reset-password.md`` -> ``Reset password``: the last-resort title."""
    stem = Path(path).stem.replace("-", " ").replace("_", " ").strip()
    return stem[:1].upper() + stem[1:] if stem else "Untitled"


def _string_field(meta: Mapping[str, Any], key: str, path: Path | str) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool | list | dict):
        raise ArticleError(path, f"front matter '{key}' must be text, not {type(value).__name__}")
    text = str(value).strip()
    return text or None


def url_problem(url: str | None) -> str | None:
    """Why ``url`` cannot be an article's link, or None when it can.

    The url is shown to customers as the cited source, so only a web address (``http(s)://``
    with a host) or a path on the help center's own site (``/billing/refunds``) will do: a
    ``javascript:`` or ``data:`` link would run in the widget's page, and a protocol-relative
    ``//host`` hides where it leads.
    """
    if url is None:
        return None
    if any(char.isspace() or ord(char) < 32 for char in url):
        return f"must be one address without spaces, not {url!r}"
    if url.startswith("/") and not url.startswith("//"):
        return None
    scheme, _, rest = url.partition("://")
    if scheme.lower() in ("http", "https") and rest and not rest.startswith(("/", "@")):
        return None
    return f"must be an http(s) address or a path starting with '/', not {url!r}"


def article_from_parts(
    *,
    meta: Mapping[str, Any],
    body: str,
    default_id: str,
    default_title: str,
    source_path: str | None,
    path_for_errors: Path | str,
) -> Article:
    """Build an ``Article`` from front matter and clean body text, checking what needs checking."""
    if not body.strip():
        raise ArticleError(path_for_errors, "empty: no text in the article body")
    heading_lines = {number for number, _, _ in iter_headings(body)}
    if not any(line.strip() for n, line in enumerate(body.split("\n")) if n not in heading_lines):
        raise ArticleError(path_for_errors, "empty: only headings, no text")
    first_heading = next((text for _, level, text in iter_headings(body) if level == 1), None)
    title = (
        _string_field(meta, "title", path_for_errors)
        or first_heading
        or next((text for _, _, text in iter_headings(body)), None)
        or default_title
    )
    url = _string_field(meta, "url", path_for_errors) or _string_field(
        meta, "permalink", path_for_errors
    )
    problem = url_problem(url)
    if problem:
        raise ArticleError(path_for_errors, f"front matter 'url': {problem}")
    try:
        tags = _as_tags(meta.get("tags"))
    except ValueError as exc:
        raise ArticleError(path_for_errors, f"front matter 'tags': {exc}") from exc
    return Article(
        id=_string_field(meta, "id", path_for_errors) or default_id,
        title=title,
        body=body,
        url=url,
        tags=tags,
        language=_string_field(meta, "language", path_for_errors)
        or _string_field(meta, "lang", path_for_errors),
        visibility=(_string_field(meta, "visibility", path_for_errors) or "public").lower(),
        source_path=source_path,
    )


def parse_markdown(
    text: str,
    *,
    default_id: str,
    source_path: str | None = None,
    includes_dir: Path | None = None,
    path_for_errors: Path | str = "<text>",
) -> Article:
    """A Markdown document (with optional front matter) as an ``Article``.

    Used for files and for articles an admin publishes through the API.
    """
    meta, body = split_front_matter(text, path_for_errors)
    if meta.get("layout") == "redirect" or meta.get("redirect") or meta.get("external_redirect"):
        raise SkipFile(path_for_errors, "redirect page (no content of its own)")
    current_dir = Path(source_path).parent if source_path else None
    variables = {"page.title": str(meta.get("title") or "")}
    body = render_template_tags(
        body, includes_dir=includes_dir, current_dir=current_dir, variables=variables
    )
    return article_from_parts(
        meta=meta,
        body=clean_markdown(body),
        default_id=default_id,
        default_title=title_from_name(path_for_errors),
        source_path=source_path,
        path_for_errors=path_for_errors,
    )


_HTML_DROPPED_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "svg",
    "iframe",
    "button",
)
_HTML_BLOCK_TAGS = frozenset(
    {
        *("p", "div", "section", "article", "main", "ul", "ol", "li", "table", "thead"),
        *("tbody", "tfoot", "tr", "pre", "blockquote", "dl", "dt", "dd", "figure"),
        *("figcaption", "caption", "details", "summary", "address", "hr", "body"),
    }
)


def parse_html(
    text: str, *, default_id: str, source_path: str | None = None, path_for_errors: Path | str
) -> Article:
    """An HTML page as an ``Article``: title, headings and text; scripts and navigation dropped."""
    from bs4 import BeautifulSoup
    from bs4.element import Comment, NavigableString, Tag

    soup = BeautifulSoup(text, "html.parser")

    def meta_content(**attrs: str) -> str | None:
        tag = soup.find("meta", attrs=dict[str, Any](attrs))
        content = tag.get("content") if isinstance(tag, Tag) else None
        return content.strip() or None if isinstance(content, str) else None

    canonical = soup.find("link", rel="canonical")
    href = canonical.get("href") if isinstance(canonical, Tag) else None
    html_tag = soup.find("html")
    lang = html_tag.get("lang") if isinstance(html_tag, Tag) else None
    title_tag = soup.find("title")
    meta: dict[str, Any] = {
        "id": meta_content(name="article-id"),
        "title": meta_content(property="og:title")
        or (title_tag.get_text(" ", strip=True) if title_tag else None),
        "url": href if isinstance(href, str) else meta_content(property="og:url"),
        "tags": meta_content(name="keywords"),
        "language": lang if isinstance(lang, str) else None,
        "visibility": meta_content(name="visibility"),
    }
    for tag in soup.find_all(_HTML_DROPPED_TAGS):
        tag.decompose()
    for tag in soup.find_all(role="navigation"):
        tag.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    root = soup.find("main") or soup.find("article") or soup.find("body") or soup

    blocks: list[str] = []

    def flush(buffer: list[str], prefix: str = "") -> None:
        words = " ".join("".join(buffer).split())
        buffer.clear()
        if words:
            blocks.append(prefix + words)

    def walk(node: Tag, buffer: list[str]) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                buffer.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower()
            if re.fullmatch(r"h[1-6]", name):
                flush(buffer)
                heading = " ".join(child.get_text(" ").split())
                if heading:
                    blocks.append(f"{'#' * int(name[1])} {heading}")
            elif name == "br":
                buffer.append(" ")
            elif name == "tr":
                flush(buffer)
                cells = [" ".join(c.get_text(" ").split()) for c in child.find_all(["td", "th"])]
                if any(cells):
                    blocks.append(" | ".join(cells))
            elif name == "pre":
                flush(buffer)
                if child.get_text().strip():
                    blocks.append(child.get_text().strip("\n"))
            elif name in _HTML_BLOCK_TAGS:
                flush(buffer)
                inner: list[str] = []
                walk(child, inner)
                flush(inner, "- " if name == "li" else "")
            else:
                walk(child, buffer)

    top: list[str] = []
    if isinstance(root, Tag):
        walk(root, top)
    flush(top)
    body = "\n\n".join(blocks)
    return article_from_parts(
        meta=meta,
        body=body,
        default_id=default_id,
        default_title=title_from_name(path_for_errors),
        source_path=source_path,
        path_for_errors=path_for_errors,
    )


def parse_text(
    text: str, *, default_id: str, source_path: str | None = None, path_for_errors: Path | str
) -> Article:
    """A plain-text file as an ``Article`` titled after its file name."""
    body = _BLANK_RUNS.sub("\n\n", "\n".join(line.rstrip() for line in text.split("\n"))).strip()
    return article_from_parts(
        meta={},
        body=body,
        default_id=default_id,
        default_title=title_from_name(path_for_errors),
        source_path=source_path,
        path_for_errors=path_for_errors,
    )


def default_article_id(path: Path, root: Path) -> str:
    """The article format's default id: the path under the KB root without its extension, with
    '/' separators."""
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        relative = Path(path.name)
    return relative.with_suffix("").as_posix()


def load_article(path: Path, root: Path | None = None, includes_dir: Path | None = None) -> Article:
    """Load one file; ``root`` is the KB folder its id is relative to (default: its folder)."""
    root = root if root is not None else path.parent
    suffix = path.suffix.lower()
    if path.name.lower().endswith(LEARNED_SIDECAR_SUFFIX):
        # ``<article>.learned.jsonl``: the article's learned questions (bot.knowledge.learned),
        # kept beside it for git; read by the service, never an article of its own.
        raise SkipFile(path, "learned questions of an article, not an article")
    if suffix not in ARTICLE_SUFFIXES:
        raise ArticleError(path, f"unsupported file type {suffix or '(none)'!r}")
    text = read_text(path)
    if not text.strip():
        raise ArticleError(path, "empty file")
    common: dict[str, Any] = {
        "default_id": default_article_id(path, root),
        "source_path": str(path.resolve()),
        "path_for_errors": path,
    }
    if suffix in MARKDOWN_SUFFIXES:
        return parse_markdown(text, includes_dir=includes_dir, **common)
    if suffix in HTML_SUFFIXES:
        return parse_html(text, **common)
    return parse_text(text, **common)


def discover_files(root: Path) -> list[Path]:
    """Article files under ``root``, sorted; names starting with '_' or '.' are not articles.

    The underscore rule is Jekyll's: ``_includes``, ``_layouts``, ``_defaults.md`` are site
    machinery, not pages.
    """
    if root.is_file():
        return [root]
    found: list[Path] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).parts
        if any(part.startswith(("_", ".")) for part in relative):
            continue
        if path.is_file() and path.suffix.lower() in ARTICLE_SUFFIXES:
            found.append(path)
    return found


@dataclass
class LoadedFolder:
    """What one folder (or file) produced: articles, plus the files that were not."""

    root: Path
    articles: list[Article] = field(default_factory=list)
    failed: list[ArticleError] = field(default_factory=list)
    skipped: list[SkipFile] = field(default_factory=list)


def load_folder(
    root: Path, id_root: Path | None = None, includes_dir: Path | None = None
) -> LoadedFolder:
    """Load every article under ``root`` (a folder or one file); bad files are collected.

    Ids are relative to ``id_root`` (default: ``root`` itself, or a file's folder), so ingesting
    a sub-folder of the KB with ``id_root`` set to the KB gives the same ids as the whole KB.
    """
    loaded = LoadedFolder(root=root)
    if not root.exists():
        loaded.failed.append(ArticleError(root, "no such file or directory"))
        return loaded
    base = id_root if id_root is not None else (root if root.is_dir() else root.parent)
    if includes_dir is None:
        includes_dir = find_includes_dir(base)
    for path in discover_files(root):
        try:
            loaded.articles.append(load_article(path, base, includes_dir))
        except ArticleError as exc:
            loaded.failed.append(exc)
        except SkipFile as exc:
            loaded.skipped.append(exc)
    return loaded
