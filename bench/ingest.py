"""Ingest benchmark: our pipeline against the model's ceiling and the naive LangChain pipeline.

For each knowledge base (DuckDuckGo's help pages with their includes, and our kb_articles/):

- **ours**: ``index_paths`` into a fresh temp data directory (load, chunk, embed, write, ledger);
- **raw encode**: ``model.encode`` over exactly the chunk texts ours produced, the ceiling;
- **naive, same chunks**: ``Chroma.from_documents`` with ``HuggingFaceEmbeddings`` over those
  same chunk texts, so the write paths compare like for like;
- **naive, own splitter**: what a user would write: the same articles through LangChain's
  ``RecursiveCharacterTextSplitter(1000, 200)`` then ``Chroma.from_documents``; its chunks are
  counted against the model's 256-word-piece limit (longer ones are silently truncated);
- **re-ingest** after editing one article, and after touching nothing.

The knowledge base is copied to a temp folder first, so the edit never touches the dataset.
Prints a table and writes JSON (default ``bench/results/ingest.json``).

    python bench/ingest.py                     # both knowledge bases
    python bench/ingest.py --only kb --skip-naive-splitter
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.core.settings import Settings  # noqa: E402
from ingest.chunking import chunk_article  # noqa: E402
from ingest.embedder import Embedder, get_embedder, resolve_model_path  # noqa: E402
from ingest.loaders import load_folder  # noqa: E402
from ingest.pipeline import effective_max_tokens, index_paths  # noqa: E402

DDG = REPO.parent / "shared" / "datasets" / "duckduckgo-help-pages"
KNOWLEDGE_BASES = {
    "kb_articles": (REPO / "kb_articles", ""),
    "duckduckgo-help-pages": (DDG, "_docs"),  # copied with its _includes beside _docs
}


def copy_kb(source: Path, subfolder: str, into: Path) -> Path:
    """A private copy to edit; for a Jekyll site the includes travel with the docs."""
    if subfolder:
        shutil.copytree(source / subfolder, into / subfolder)
        if (source / "_includes").is_dir():
            shutil.copytree(source / "_includes", into / "_includes")
        return into / subfolder
    shutil.copytree(source, into / source.name)
    return into / source.name


def bench_ours(kb: Path, settings: Settings, embedder: Embedder) -> dict[str, Any]:
    report = index_paths([kb], settings, embedder)
    articles = len(report.added)
    return {
        "articles": articles,
        "chunks": report.chunks_written,
        "seconds": report.seconds,
        "articles_per_s": articles / report.seconds,
        "chunks_per_s": report.chunks_written / report.seconds,
        "skipped_files": len(report.skipped),
        "failed_files": [f"{p.path}: {p.reason}" for p in report.failed],
    }


def bench_raw(texts: list[str], embedder: Embedder) -> dict[str, Any]:
    started = time.perf_counter()
    embedder.model.encode(
        texts,
        batch_size=embedder.batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    seconds = time.perf_counter() - started
    return {"chunks": len(texts), "seconds": seconds, "chunks_per_s": len(texts) / seconds}


def bench_naive(
    texts: list[str], metadatas: list[dict[str, Any]], model_path: Path, into: Path
) -> dict[str, Any]:
    """``Chroma.from_documents`` as the LangChain docs show it (model load not timed)."""
    import chromadb
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings

    embeddings = HuggingFaceEmbeddings(
        model_name=str(model_path),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )
    documents = [
        Document(page_content=text, metadata=meta)
        for text, meta in zip(texts, metadatas, strict=True)
    ]
    started = time.perf_counter()
    Chroma.from_documents(
        documents,
        embeddings,
        collection_name="naive",
        persist_directory=str(into),
        client_settings=chromadb.config.Settings(anonymized_telemetry=False),
    )
    seconds = time.perf_counter() - started
    return {"chunks": len(texts), "seconds": seconds, "chunks_per_s": len(texts) / seconds}


def naive_split(kb: Path, embedder: Embedder) -> tuple[list[str], list[dict[str, Any]], int]:
    """The tutorial splitter over the same articles; also counts chunks past the model limit."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    texts: list[str] = []
    metadatas: list[dict[str, Any]] = []
    for article in load_folder(kb).articles:
        for piece in splitter.split_text(article.body):
            texts.append(piece)
            metadatas.append({"source": article.id})
    limit = embedder.max_tokens - 2
    truncated = sum(1 for text in texts if embedder.count_tokens(text) > limit)
    return texts, metadatas, truncated


def bench_reingest(kb: Path, settings: Settings, embedder: Embedder) -> dict[str, Any]:
    started = time.perf_counter()
    untouched = index_paths([kb], settings, embedder)
    untouched_s = time.perf_counter() - started
    indexed = sorted(Path(a.source_path) for a in load_folder(kb).articles if a.source_path)
    target = indexed[len(indexed) // 2]  # an indexed article, not a skipped redirect stub
    target.write_text(
        target.read_text(encoding="utf-8") + "\n\nAdded by the benchmark: one more sentence.\n",
        encoding="utf-8",
    )
    started = time.perf_counter()
    edited = index_paths([kb], settings, embedder)
    edited_s = time.perf_counter() - started
    return {
        "untouched": {
            "seconds": untouched_s,
            "chunks_written": untouched.chunks_written,
            "unchanged": len(untouched.unchanged),
        },
        "one_edit": {
            "seconds": edited_s,
            "file": str(target.relative_to(kb)),
            "updated": edited.updated,
            "chunks_written": edited.chunks_written,
            "chunks_embedded": edited.chunks_embedded,
            "chunks_deleted": edited.chunks_deleted,
        },
    }


def run_one(name: str, embedder: Embedder, skip_naive_splitter: bool) -> dict[str, Any]:
    source, subfolder = KNOWLEDGE_BASES[name]
    work = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{name}-"))
    try:
        kb = copy_kb(source, subfolder, work / "kb")
        settings = Settings(data_dir=work / "data", kb_path=kb, _env_file=None)
        max_tokens = effective_max_tokens(settings, embedder)
        loaded = load_folder(kb)
        chunks = [
            chunk
            for article in loaded.articles
            for chunk in chunk_article(
                article, embedder.count_tokens, max_tokens, settings.chunk_overlap_tokens
            )
        ]
        texts = [chunk.text for chunk in chunks]
        print(f"[{name}] {len(loaded.articles)} articles, {len(texts)} chunks", flush=True)
        result: dict[str, Any] = {"articles": len(loaded.articles), "chunks": len(texts)}
        # Untimed pass first: torch builds its CPU kernels per input shape on first use, and
        # whichever pipeline ran first would pay for them all.
        bench_raw(texts, embedder)
        import chromadb  # noqa: F401  (import costs are paid once per process, not per ingest)
        import langchain_chroma  # noqa: F401

        result["raw_encode"] = bench_raw(texts, embedder)
        print(f"[{name}] raw encode {result['raw_encode']['seconds']:.1f} s", flush=True)
        result["ours"] = bench_ours(kb, settings, embedder)
        print(f"[{name}] ours {result['ours']['seconds']:.1f} s", flush=True)
        _, model_path = resolve_model_path(settings.embedding_model)
        metadatas = [{"source": c.metadata["source"]} for c in chunks]
        result["naive_same_chunks"] = bench_naive(texts, metadatas, model_path, work / "naive1")
        print(f"[{name}] naive {result['naive_same_chunks']['seconds']:.1f} s", flush=True)
        naive_texts, naive_meta, truncated = naive_split(kb, embedder)
        result["naive_splitter_chunks"] = {
            "chunks": len(naive_texts),
            "chunks_over_model_limit": truncated,
        }
        if not skip_naive_splitter:
            naive = bench_naive(naive_texts, naive_meta, model_path, work / "naive2")
            naive["articles_per_s"] = len(loaded.articles) / naive["seconds"]
            naive["chunks_over_model_limit"] = truncated
            result["naive_own_splitter"] = naive
            print(f"[{name}] naive (own splitter) {naive['seconds']:.1f} s", flush=True)
        result["reingest"] = bench_reingest(kb, settings, embedder)
        ours, raw = result["ours"], result["raw_encode"]
        result["ratios"] = {
            "ours_vs_raw_encode": ours["chunks_per_s"] / raw["chunks_per_s"],
            "ours_vs_naive_same_chunks": ours["chunks_per_s"]
            / result["naive_same_chunks"]["chunks_per_s"],
            "full_vs_one_edit_speedup": ours["seconds"] / result["reingest"]["one_edit"]["seconds"],
        }
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Ingest benchmark (CPU)")
    for column in ("knowledge base", "measure", "seconds", "articles/s", "chunks/s", "note"):
        table.add_column(column, justify="left" if column in {"measure", "note"} else "right")
    for name, r in results["knowledge_bases"].items():
        label = f"{name}\n{r['articles']} art. / {r['chunks']} chunks"
        ours, raw = r["ours"], r["raw_encode"]
        naive = r["naive_same_chunks"]
        rows = [
            ("ours (index_paths)", ours["seconds"], ours["articles_per_s"], ours["chunks_per_s"],
             f"{r['ratios']['ours_vs_raw_encode']:.0%} of raw encode"),
            ("raw model.encode", raw["seconds"], None, raw["chunks_per_s"], "ceiling"),
            ("naive from_documents", naive["seconds"], r["articles"] / naive["seconds"],
             naive["chunks_per_s"],
             f"ours is {r['ratios']['ours_vs_naive_same_chunks']:.2f}x its chunks/s"),
        ]  # fmt: skip
        if "naive_own_splitter" not in r:
            split = r["naive_splitter_chunks"]
            rows.append(
                ("naive splitter (not timed)", None, None, None,
                 f"{split['chunks']} chunks, {split['chunks_over_model_limit']} over 256 tokens")
            )  # fmt: skip
        if "naive_own_splitter" in r:
            own = r["naive_own_splitter"]
            rows.append(
                ("naive, own splitter", own["seconds"], own["articles_per_s"],
                 own["chunks_per_s"],
                 f"{own['chunks']} chunks, {own['chunks_over_model_limit']} over 256 tokens")
            )  # fmt: skip
        edit, untouched = r["reingest"]["one_edit"], r["reingest"]["untouched"]
        rows.append(
            ("re-ingest, one edit", edit["seconds"], None, None,
             f"{edit['chunks_written']} chunks written, {edit['chunks_embedded']} embedded; "
             f"{r['ratios']['full_vs_one_edit_speedup']:.0f}x faster than full")
        )  # fmt: skip
        rows.append(
            ("re-ingest, untouched", untouched["seconds"], None, None,
             f"{untouched['chunks_written']} chunks written")
        )  # fmt: skip
        for number, (measure, seconds, aps, cps, note) in enumerate(rows):
            table.add_row(
                label if number == 0 else "",
                measure,
                f"{seconds:.2f}" if seconds is not None else "",
                f"{aps:.1f}" if aps is not None else "",
                f"{cps:.1f}" if cps is not None else "",
                note,
            )
    Console(width=140).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["ddg", "kb"], help="Run one knowledge base.")
    parser.add_argument("--skip-naive-splitter", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ingest.json")
    args = parser.parse_args()
    names = {"ddg": ["duckduckgo-help-pages"], "kb": ["kb_articles"]}.get(
        args.only or "", list(KNOWLEDGE_BASES)
    )
    import torch

    started = time.perf_counter()
    embedder = get_embedder()
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "embedder": {"name": embedder.name, "batch_size": embedder.batch_size},
        "model_load_seconds": time.perf_counter() - started,
        "knowledge_bases": {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.only and args.out.exists():  # keep the other knowledge base's earlier figures
        earlier = json.loads(args.out.read_text()).get("knowledge_bases", {})
        results["knowledge_bases"].update({k: v for k, v in earlier.items() if k not in names})
    for name in names:
        results["knowledge_bases"][name] = run_one(name, embedder, args.skip_naive_splitter)
        results["machine"]["load_average_after"] = os.getloadavg()
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # partial results survive
    print_table(results)
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
