"""A customer's question is encoded on one torch thread, a batch on every core (issue 11).

In the service, answers run side by side; one question's matrices are too small to split, so a
second thread per question only took the core another answer needed (docs/performance.md). The
thread count is observed inside the model's own forward pass, where torch reads it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from ingest.embedder import ONE_TEXT_THREADS, Embedder


@pytest.fixture
def threads_seen(embedder: Embedder) -> Iterator[list[int]]:
    seen: list[int] = []
    transformer = embedder.model[0]
    hook = transformer.register_forward_pre_hook(
        lambda _module, _args: seen.append(torch.get_num_threads())
    )
    try:
        yield seen
    finally:
        hook.remove()


def test_a_question_is_encoded_on_one_thread(embedder: Embedder, threads_seen: list[int]) -> None:
    embedder.embed_query("Where is my parcel? (thread test)")

    assert threads_seen == [ONE_TEXT_THREADS]


def test_a_batch_keeps_every_core(embedder: Embedder, threads_seen: list[int]) -> None:
    embedder.encode(["How do refunds work?", "Can I change my address?", "Is Plus worth it?"])

    assert threads_seen and set(threads_seen) == {embedder.batch_threads}


def test_a_batch_after_a_question_gets_its_cores_back(
    embedder: Embedder, threads_seen: list[int]
) -> None:
    embedder.embed_query("How long does a refund take? (thread test)")
    embedder.encode_short(["First sentence.", "Second sentence."])

    assert threads_seen == [ONE_TEXT_THREADS, embedder.batch_threads]


def test_one_thread_gives_the_same_vector_as_a_batch(embedder: Embedder) -> None:
    text = "My card was declined at checkout (thread test)"
    alone = np.asarray(embedder.embed_query(text))
    in_batch = np.asarray(embedder.encode([text, "Another question entirely"])[0])

    assert np.allclose(alone, in_batch, atol=1e-4)
