"""Follow-up questions rewritten with the conversation before retrieval.

"And how long does that take?" retrieves nothing useful on its own. With an LLM configured, the
model rewrites the last question into a standalone one. Without one, a heuristic adds the
customer's previous question(s) to the query: the current question comes first (dense models
weigh early text more) and the earlier turn supplies the topic words both retrievers need.
Assistant turns are left out: they are long, and they repeat article text that would pull
retrieval back to the article already shown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.core.schemas import Turn

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

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


def looks_dependent(question: str) -> bool:
    """True for questions that probably need earlier turns to be understood."""
    words = re.findall(r"\w+", question)
    return len(words) <= 6 or bool(_ANAPHORA.search(question) or _CONTINUATION.search(question))


def heuristic_rewrite(question: str, history: Sequence[Turn]) -> str:
    """The retrieval query for ``question`` given earlier turns, without an LLM."""
    earlier = [t.content.strip() for t in history if t.role == "user" and t.content.strip()]
    if not earlier:
        return question
    context = earlier[-1]
    if looks_dependent(question) and len(earlier) > 1:
        context = f"{earlier[-2]} {context}"
    return f"{question}\n{context[-MAX_CONTEXT_CHARS:]}"


REWRITE_PROMPT = (
    "Rewrite the customer's last message as one standalone question for searching help-center "
    "articles. Resolve words like 'it', 'that' or 'there' using the conversation. Keep the "
    "customer's wording where possible. Reply with the question only."
)


async def llm_rewrite(question: str, history: Sequence[Turn], model: BaseChatModel) -> str:
    """A standalone question from the chat model; the heuristic when the model fails."""
    if not history:
        return question
    from langchain_core.messages import HumanMessage, SystemMessage

    transcript = "\n".join(f"{t.role}: {t.content[:1000]}" for t in history[-6:])
    messages = [
        SystemMessage(REWRITE_PROMPT),
        HumanMessage(f"Conversation:\n{transcript}\n\nLast message: {question}"),
    ]
    try:
        reply = await model.ainvoke(messages)
    except Exception:  # the answer must not fail because the rewrite did
        log.warning("LLM rewrite failed; using the heuristic", exc_info=True)
        return heuristic_rewrite(question, history)
    text = reply.text if hasattr(reply, "text") else str(reply.content)
    text = text.strip().strip('"').strip()
    return text[:1000] if text else heuristic_rewrite(question, history)
