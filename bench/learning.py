"""Does the bot learn from its team? A replay of past traffic, measured on future traffic.

    python bench/learning.py [--short] [--topics K] [--points 0,1,3,5,10,20] [--out PATH]

banking77-oos ``train`` is the past, ``valid`` the future. The knowledge base is the one
``bench/quality.py`` builds (one article per in-scope intent, ten ``train`` questions from inside
the intent's block as its body), written as Markdown files and indexed with the product's ingest
pipeline, then served by the real service (uvicorn on a free port):

1. **Replay the past** through the customer socket, one conversation per question (questions
   already in an article's body are skipped): the bot answers, offers choices or escalates. A
   customer whose answer came from the labelled article votes it helpful; one offered the
   labelled article among choices picks it and votes the answer helpful; anyone else asks for a
   person, and an agent (the agent API) claims, replies and resolves with the labelled article
   attached. Both paths propose the question as a candidate learned question.
2. **Approve** through the admin API, topic by topic in arrival order, until each topic has N
   approved learned questions (near-duplicates merge, so a topic may have fewer).
3. **Measure the future** at each N with ``POST /api/ask``: in-scope questions answered from the
   right article (and resolved with one choice), out-of-scope questions (``id-oos`` and
   ``ood-oos`` valid) escalated; N = 0 is the same replay without learning. Answer latency
   (query embeddings pre-computed once for all points, so the figure is what learned questions
   change: retrieval and answering) and the learned index's size at each N.

Writes ``bench/results/learning.json`` (or ``--out``) and prints the table for
docs/evaluation.md. Dataset text is read from ``../shared/datasets``, never copied.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from websockets.sync.client import ClientConnection, connect  # noqa: E402

from bot.core.settings import Settings  # noqa: E402
from ingest.embedder import Embedder, get_embedder  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
BANKING = DATASETS / "banking77-oos" / "Datasets" / "BANKING77-OOS"
RESULTS = ROOT / "bench" / "results" / "learning.json"
ORIGIN = "http://localhost:8000"
POINTS = (0, 1, 3, 5, 10, 20)
SHORT = {"topics": 6, "points": (0, 5), "future_per_topic": 8, "oos": 40}


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def load(
    topics: int | None,
    future_per_topic: int | None,
    oos: int | None,
    extra: int,
    body_questions: int = 10,
) -> tuple[dict[str, tuple[str, str]], dict[str, list[str]], list[tuple[str, str | None]]]:
    """(intent -> (title, body)), past questions per intent (not in the body, arrival order),
    future questions (text, intent or None for out-of-scope)."""
    import importlib.util

    # bench/quality.py is a script beside this one, not a package module (and bench/ must not
    # go on sys.path: bench/ingest.py would hide the ingest package).
    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "bench" / "quality.py")
    assert spec is not None and spec.loader is not None
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    articles, _questions, _groups = quality.banking()
    intents = sorted(a.id for a in articles)
    if topics:
        intents = intents[:topics]
    chosen = set(intents)
    kb = {a.id: (a.title, _first_items(a.body, body_questions)) for a in articles if a.id in chosen}
    past: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(
        _lines(BANKING / "train/seq.in"), _lines(BANKING / "train/label"), strict=True
    ):
        if label in chosen and f"- {text}\n" not in kb[label][1] + "\n":
            past[label].append(text)
    for label in past:
        past[label] = past[label][:extra]
    future: list[tuple[str, str | None]] = []
    per: dict[str, int] = defaultdict(int)
    for text, label in zip(
        _lines(BANKING / "valid/seq.in"), _lines(BANKING / "valid/label"), strict=True
    ):
        if label in chosen and (future_per_topic is None or per[label] < future_per_topic):
            per[label] += 1
            future.append((text, label))
    outside = [
        t
        for split in ("id-oos", "ood-oos")
        for t in _lines(BANKING / split / "valid" / "seq.in")
        if t.strip()
    ]
    if oos is not None:
        step = max(1, len(outside) // oos)
        outside = outside[::step][:oos]
    future += [(t, None) for t in outside]
    return kb, past, future


def _first_items(body: str, count: int) -> str:
    """The article body with only its first ``count`` example questions (quality.py's KB has
    ten: an article written in customers' words already; fewer is closer to a help center
    written in the company's words)."""
    lines = body.splitlines()
    items = [i for i, line in enumerate(lines) if line.startswith("- ")]
    drop = set(items[count:])
    return "\n".join(line for i, line in enumerate(lines) if i not in drop)


# --- the service -----------------------------------------------------------------------------


class Service:
    """The real app under uvicorn in a thread, on a socket bound before it starts."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from bot.live.transport import uvicorn_ws_options
        from bot.web.app import create_app

        self.app = create_app(settings)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", **uvicorn_ws_options(settings)
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Service:
        self.thread.start()
        deadline = time.monotonic() + 180
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    @property
    def ctx(self) -> Any:
        return self.app.state.ctx


def relaxed(settings: dict[str, Any]) -> dict[str, Any]:
    """Rate limits out of the way: one client replays a whole help desk's traffic."""
    for name, field in Settings.model_fields.items():
        if "rate_" in name and name.endswith("_burst"):
            settings[name] = 100_000
        elif "rate_" in name and (name.endswith("_per_minute") or name.endswith("_per_second")):
            settings[name] = 1_000_000.0
        elif name in ("answer_queue_per_ip", "answer_queue_total"):
            settings[name] = field.default * 10
    return settings


def _recv(ws: ClientConnection, timeout: float = 60.0) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return frame


def _until(ws: ClientConnection, stop: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        frame = _recv(ws, max(0.01, deadline - time.monotonic()))
        if stop(frame):
            return frame


def _bot_or_handoff(frame: dict[str, Any]) -> bool:
    return (frame["type"] == "message" and frame["role"] == "bot") or (
        frame["type"] == "state" and frame["state"] == "awaiting_human"
    )


def replay_one(service: Service, agent: httpx.Client, question: str, label: str) -> str:
    """One past conversation; returns how it ended: helpful, chose, agent."""
    url = f"ws://127.0.0.1:{service.port}/ws/chat"
    with connect(url, origin=ORIGIN, open_timeout=30) as ws:  # type: ignore[arg-type]
        ws.send(json.dumps({"type": "hello"}))
        welcome = _recv(ws)
        conversation_id = welcome["conversation_id"]
        ws.send(json.dumps({"type": "message", "client_msg_id": "q1", "text": question}))
        frame = _until(ws, _bot_or_handoff)
        how = "agent"
        if frame["type"] == "message":
            sources = [s["article_id"] for s in frame.get("sources") or []]
            offered = [s["article_id"] for s in frame.get("suggestions") or []]
            if offered and label in offered:
                ws.send(json.dumps({"type": "choose", "seq": frame["seq"], "article_id": label}))
                frame = _until(ws, _bot_or_handoff)
                if frame["type"] == "message" and [
                    s["article_id"] for s in frame.get("sources") or []
                ][:1] == [label]:
                    how = "chose"
            elif not offered and sources[:1] == [label]:
                how = "helpful"
            if how != "agent":
                ws.send(json.dumps({"type": "feedback", "seq": frame["seq"], "helpful": True}))
                time.sleep(0.005)
            else:
                ws.send(json.dumps({"type": "handoff_request"}))
                _until(ws, lambda f: f["type"] == "state" and f["state"] == "awaiting_human")
        if how == "agent":
            base = f"/api/agent/conversations/{conversation_id}"
            agent.post(f"{base}/claim").raise_for_status()
            agent.post(f"{base}/messages", json={"text": "Let me help you with that."})
            agent.post(f"{base}/resolve", json={"article_id": label}).raise_for_status()
        else:  # the vote is stored before the socket closes: wait for the server to read it
            _quiet(ws)
    return how


def _quiet(ws: ClientConnection, seconds: float = 0.05) -> None:
    try:
        while True:
            ws.recv(timeout=seconds)
    except TimeoutError:
        return


def candidates(admin: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        got = admin.get(
            "/api/admin/learned", params={"status": "candidate", "page": page, "per_page": 200}
        ).json()
        items += got["items"]
        if len(items) >= got["total"] or not got["items"]:
            return sorted(items, key=lambda item: item["id"])
        page += 1


def approve_up_to(admin: httpx.Client, approved: dict[str, int], n: int) -> None:
    """Approve candidates topic by topic (oldest first) until each has ``n`` learned."""
    by_topic: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in candidates(admin):
        by_topic[item["article_id"]].append(item)
    for topic, items in by_topic.items():
        for item in items:
            if approved[topic] >= n:
                break
            got = admin.post(f"/api/admin/learned/{item['id']}/approve")
            got.raise_for_status()
            if got.json()["id"] == item["id"]:
                approved[topic] += 1


def measure(client: httpx.Client, future: list[tuple[str, str | None]]) -> dict[str, float | int]:
    right = choice = wrong = in_escalated = 0
    oos_escalated = oos_total = 0
    latencies: list[float] = []
    for text, label in future:
        started = time.perf_counter()
        reply = client.post("/api/ask", json={"question": text})
        latencies.append((time.perf_counter() - started) * 1000)
        reply.raise_for_status()
        body = reply.json()
        offered = [s["article_id"] for s in body.get("suggestions") or []]
        first = [s["article_id"] for s in body.get("sources") or []][:1]
        if label is None:
            oos_total += 1
            oos_escalated += bool(body["escalate"])
        elif body["escalate"]:
            in_escalated += 1
        elif offered:
            choice += label in offered
            wrong += label not in offered
        elif first == [label]:
            right += 1
        else:
            wrong += 1
    in_total = sum(1 for _, label in future if label is not None)
    latencies.sort()
    return {
        "in_scope": in_total,
        "in_scope_right": round(right / in_total, 4) if in_total else 0.0,
        "in_scope_right_or_choice": round((right + choice) / in_total, 4) if in_total else 0.0,
        "in_scope_wrong": round(wrong / in_total, 4) if in_total else 0.0,
        "in_scope_escalated": round(in_escalated / in_total, 4) if in_total else 0.0,
        "out_of_scope": oos_total,
        "oos_escalated": round(oos_escalated / oos_total, 4) if oos_total else 0.0,
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else 0.0,
        "latency_ms_p95": round(latencies[int(0.95 * (len(latencies) - 1))], 1)
        if latencies
        else 0.0,
    }


def prime(embedder: Embedder, texts: list[str]) -> None:
    """Embed the future questions once; every point asks for the same vectors again."""
    unique = list(dict.fromkeys(texts))
    cache = dict(zip(unique, embedder.encode(unique), strict=True))
    original = type(embedder).embed_query

    def cached(text: str) -> list[float]:
        vector = cache.get(text)
        return list(vector) if vector is not None else original(embedder, text)

    embedder.embed_query = cached  # type: ignore[method-assign]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bot.core.db import transaction
    from bot.people.users import create_user
    from ingest.pipeline import index_paths

    points = sorted(set(args.points))
    kb, past, future = load(
        args.topics, args.future_per_topic, args.oos, max(points) + 5, args.body_questions
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "kb"
        folder.mkdir()
        for intent, (title, body) in kb.items():
            (folder / f"{intent}.md").write_text(
                f"---\nid: {intent}\ntitle: {title}\n---\n\n{body}\n", encoding="utf-8"
            )
        settings = Settings(  # type: ignore[call-arg]
            **relaxed(
                {
                    "data_dir": root / "data",
                    "kb_path": folder,
                    "allowed_origins": [ORIGIN],
                    "business_hours": "24/7",
                    "_env_file": None,
                }
            )
        )
        embedder = get_embedder(settings.embedding_model, settings.embedding_batch_size)
        index_paths([folder], settings, embedder)
        print(
            f"  KB: {len(kb)} articles; past {sum(map(len, past.values()))} questions; "
            f"future {len(future)}",
            flush=True,
        )
        with Service(settings) as service:
            with transaction(service.ctx.sessions) as session:
                _, admin_token = create_user(session, "admin@bench.example", "admin")
                _, agent_token = create_user(session, "agent@bench.example", "agent")
            base = f"http://127.0.0.1:{service.port}"
            admin = httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {admin_token}"}, timeout=120
            )
            agent = httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {agent_token}"}, timeout=120
            )
            client = httpx.Client(base_url=base, headers={"Origin": ORIGIN}, timeout=120)
            replay_started = time.perf_counter()
            ends: dict[str, int] = defaultdict(int)
            order = [
                (q, topic)
                for i in range(max(map(len, past.values()), default=0))
                for topic, qs in sorted(past.items())
                if i < len(qs)
                for q in [qs[i]]
            ]
            for question, topic in order:
                ends[replay_one(service, agent, question, topic)] += 1
            replay_s = time.perf_counter() - replay_started
            print(
                f"  replayed {len(order)} conversations in {replay_s:.0f}s: {dict(ends)}",
                flush=True,
            )
            prime(service.ctx.embedder, [text for text, _ in future])
            approved: dict[str, int] = defaultdict(int)
            curve: list[dict[str, Any]] = []
            for n in points:
                approve_up_to(admin, approved, n)
                listing = admin.get("/api/admin/learned", params={"status": "approved"}).json()
                figures = measure(client, future)
                row = {
                    "learned_per_topic": n,
                    "learned_total": listing["total"],
                    "learned_min_per_topic": min((approved[t] for t in kb), default=0),
                    "index": listing["index"],
                    **figures,
                }
                curve.append(row)
                print(
                    f"  N={n:>2}: learned {row['learned_total']:>4}, in-scope right "
                    f"{row['in_scope_right']:.3f} (+choice {row['in_scope_right_or_choice']:.3f}), "
                    f"oos escalated {row['oos_escalated']:.3f}, p50 {row['latency_ms_p50']} ms",
                    flush=True,
                )
            audit = admin.get("/api/admin/learned/audit", params={"limit": 5}).json()
    return {
        "dataset": "banking77-oos (train = past, valid = future)",
        "topics": len(kb),
        "past_conversations": len(order),
        "replay_endings": dict(ends),
        "replay_s": round(replay_s, 1),
        "answer_threshold": settings.answer_threshold,
        "body_questions": args.body_questions,
        "curve": curve,
        "audit_sample": audit,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| learned per topic | learned in all | in-scope right | right or one choice | "
        "in-scope wrong | out-of-scope escalated | /api/ask p50 / p95 ms | learned vectors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["curve"]:
        lines.append(
            f"| {row['learned_per_topic']} | {row['learned_total']} | "
            f"{row['in_scope_right']:.3f} | {row['in_scope_right_or_choice']:.3f} | "
            f"{row['in_scope_wrong']:.3f} | {row['oos_escalated']:.3f} | "
            f"{row['latency_ms_p50']} / {row['latency_ms_p95']} | "
            f"{row['index'].get('vector_bytes', 0) // 1024} KiB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="a small slice (CI, < 2 minutes)")
    parser.add_argument("--topics", type=int, default=None, help="first K intents only")
    parser.add_argument("--points", default=",".join(map(str, POINTS)))
    parser.add_argument("--future-per-topic", type=int, default=None)
    parser.add_argument("--oos", type=int, default=None, help="out-of-scope questions at most")
    parser.add_argument(
        "--body-questions",
        type=int,
        default=10,
        help="example questions kept in each article's body (quality.py's KB: 10)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.points = [int(p) for p in str(args.points).split(",") if p.strip()]
    if args.short:
        args.topics = args.topics or SHORT["topics"]
        args.points = list(SHORT["points"])  # type: ignore[call-overload]
        args.future_per_topic = args.future_per_topic or SHORT["future_per_topic"]
        args.oos = args.oos or SHORT["oos"]
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"  elapsed {result['elapsed_s']}s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
