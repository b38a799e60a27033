"""Follow-up questions: use the conversation when the question depends on it, not otherwise.

"And how long does that take?" retrieves nothing useful on its own. With an LLM configured, the
model rewrites the last question into a standalone one. Without one, a heuristic adds the
customer's previous question(s) to the query: the current question comes first (dense models
weigh early text more) and the earlier turn supplies the topic words both retrievers need.
Assistant turns are left out: they are long, and they repeat article text that would pull
retrieval back to the article already shown.

Adding history to *every* question breaks the other half of a conversation: the customer moves
on. After a question about cancelling Plus, "Can I get my refund as Parcelly credit?" was
answered with the Plus cancellation steps, and "what's the weather in Paris?" after a returns
question was offered the return policy: the earlier turn's words outweighed the new question's.
So :func:`resolve_follow_up` retrieves for the question alone first and lets history in only

- when the question *depends* on it (:func:`looks_dependent`: a pronoun or "that" pointing back,
  a continuation such as "and ..." / "what about ...", or an ellipsis with at most one word of
  its own), or
- when the question stands alone but is *ambiguous* between some of its own articles: the
  article the conversation points to scores, for the question alone, within
  :data:`AMBIGUITY_MARGIN` of its best. History then picks among the question's own candidates;
  it never brings in an article the question does not point to.

Otherwise a standalone question keeps its own articles, and one that matches nothing in the
knowledge base (score under :data:`OFF_TOPIC_SCORE`) is never rescued by the previous topic: it
is handed over as "no knowledge", as it would be asked alone. On MTRAG (docs/evaluation.md) this
keeps most of what history adds (R@5 0.963 against 0.980 always with history and 0.906 for the
last turn alone) while a change of subject is answered as the new subject.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bot.core.privacy import mask_personal_data
from bot.core.schemas import Turn
from bot.core.text import tokenize

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from bot.knowledge.retrieval import ArticleHit

log = logging.getLogger(__name__)

# Words that point back at something said earlier.
_ANAPHORA = re.compile(
    r"\b(it|its|it's|that|this|these|those|they|them|their|there|he|she|his|her|one|ones|"
    r"same|such|above|also|too|else|more|other|another|then)\b",
    re.IGNORECASE,
)
_CONTINUATION = re.compile(
    r"^\s*(and|but|or|so|also|what about|how about|what if|then|ok|okay|and if|why)\b",
    re.IGNORECASE,
)
MAX_CONTEXT_CHARS = 300
ELLIPSIS_TERMS = 1
"""A question with at most this many content words of its own ("what about express?",
"Spain?", "why?") is an ellipsis: its topic is in the conversation. "what's the weather in
Paris?" has three and stands alone (the old rule, six words or fewer, sent it to the history)."""


def looks_dependent(question: str) -> bool:
    """True for questions that need earlier turns to be understood: a word pointing back, a
    continuation, or an ellipsis (:data:`ELLIPSIS_TERMS`)."""
    if _ANAPHORA.search(question) or _CONTINUATION.search(question):
        return True
    return len(set(tokenize(question))) <= ELLIPSIS_TERMS


def heuristic_rewrite(question: str, history: Sequence[Turn]) -> str:
    """The retrieval query for ``question`` given earlier turns, without an LLM."""
    earlier = [t.content.strip() for t in history if t.role == "user" and t.content.strip()]
    if not earlier:
        return question
    context = earlier[-1]
    if looks_dependent(question) and len(earlier) > 1:
        context = f"{earlier[-2]} {context}"
    return f"{question}\n{context[-MAX_CONTEXT_CHARS:]}"


OFF_TOPIC_SCORE = 0.15
"""Below this answerability score the question alone matches nothing in the knowledge base (the
answerability module's "no knowledge" line): the previous topic may not rescue it."""
AMBIGUITY_MARGIN = 0.05
"""A standalone question takes the conversation's article only if, for the question alone, that
article scores within this of its best: history breaks a near-tie among the question's own
candidates. 0.05 of answerability is about one step of the threshold curve; the refunds question
that followed a Plus question scored the cancellation article far below its best."""

FollowUpWhy = Literal["no_history", "standalone", "dependent", "ambiguous", "off_topic"]


@dataclass
class FollowUp:
    """The query retrieval used for a question, what it found, and why history was (not) used."""

    query: str
    hits: list[ArticleHit]
    why: FollowUpWhy

    @property
    def used_history(self) -> bool:
        return self.why in ("dependent", "ambiguous")


def resolve_follow_up(
    question: str,
    history: Sequence[Turn],
    search: Callable[[str], list[ArticleHit]],
    score: Callable[[ArticleHit], float],
) -> FollowUp:
    """Retrieve for ``question`` with or without the conversation, as the module explains.

    ``search`` is the retriever and ``score`` the answerability of one article. At most two
    searches (one without history, or for an off-topic question).
    """
    alone = search(question)
    rewritten = heuristic_rewrite(question, history)
    if rewritten == question:
        return FollowUp(question, alone, "no_history")
    dependent = looks_dependent(question)
    best = score(alone[0]) if alone else 0.0
    if not dependent and best < OFF_TOPIC_SCORE:
        return FollowUp(question, alone, "off_topic")
    with_history = search(rewritten)
    if dependent:
        return FollowUp(rewritten, with_history, "dependent")
    # History breaks a near-tie only when it points at another of the question's own close
    # articles; when it points at the question's best anyway, the search with history would
    # only add the earlier topic's articles behind it (as choices, or in the sources).
    if with_history and alone and with_history[0].article_id != alone[0].article_id:
        own = {hit.article_id: score(hit) for hit in alone}
        pointed = own.get(with_history[0].article_id)
        if pointed is not None and pointed >= best - AMBIGUITY_MARGIN:
            return FollowUp(rewritten, with_history, "ambiguous")
    return FollowUp(question, alone, "standalone")


REWRITE_PROMPT = (
    "Rewrite the customer's last message as one standalone question for searching help-center "
    "articles. Resolve words like 'it', 'that' or 'there' using the conversation. Keep the "
    "customer's wording where possible. Reply with the question only."
)


async def llm_rewrite(
    question: str, history: Sequence[Turn], model: BaseChatModel, *, mask: bool = True
) -> str:
    """A standalone question from the chat model; the heuristic when the model fails.

    With ``mask`` (``llm_mask_personal_data``), the customer's e-mail addresses, phone and card
    numbers are masked in what the model provider receives (``bot.core.privacy``)."""
    if not history:
        return question
    from langchain_core.messages import HumanMessage, SystemMessage

    def shown(turn: Turn) -> str:
        text = turn.content[:1000]
        return mask_personal_data(text) if mask and turn.role == "user" else text

    last = mask_personal_data(question) if mask else question
    transcript = "\n".join(f"{t.role}: {shown(t)}" for t in history[-6:])
    messages = [
        SystemMessage(REWRITE_PROMPT),
        HumanMessage(f"Conversation:\n{transcript}\n\nLast message: {last}"),
    ]
    try:
        reply = await model.ainvoke(messages)
    except Exception:  # the answer must not fail because the rewrite did
        log.warning("LLM rewrite failed; using the heuristic", exc_info=True)
        return heuristic_rewrite(question, history)
    text = reply.text if hasattr(reply, "text") else str(reply.content)
    text = text.strip().strip('"').strip()
    return text[:1000] if text else heuristic_rewrite(question, history)
