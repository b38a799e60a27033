"""The answerability score: should the bot answer from its best article, or hand over?

A support lead cares about deflection *without wrong answers*, so the decision to answer is made
on evidence that the best article is about the question, not merely the nearest thing in the
store. The score combines two signals that fail in different ways:

- the dense cosine similarity of the best chunk or, better, of the best single sentence
  (MiniLM, normalised vectors): paraphrase-aware,
  but an out-of-scope question about a neighbouring topic still lands fairly close;
- term coverage: the idf-weighted share of the question's content words found in the article.
  Near-miss topics tend to lack the question's rare words.

Coverage gets a small weight: on banking77-oos it separated in- from out-of-scope questions
worse than similarity did. The mix was checked against a logistic regression fitted on
banking77-oos ``valid`` (5-fold cross-validated, classes balanced): it puts the same relative
weight on chunk vs. sentence similarity (0.64 / 0.36), and adding the margin between the first
and second article, the query's mean similarity to the whole KB, nearest-neighbour agreement or
BM25 did not separate better on held-out folds, so the score stays this simple.

The constants map the typical ranges onto [0, 1]; the threshold that turns the score into a
decision is a setting chosen from data (``supportbot eval`` prints the curve).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.schemas import EscalationReason
from bot.knowledge.intents import asks_for_human
from bot.knowledge.retrieval import ArticleHit

# Cosine similarities of MiniLM between a question and a passage: unrelated text sits around
# 0.0-0.25, a passage on the same topic 0.4-0.8.
DENSE_FLOOR = 0.20
DENSE_CEIL = 0.75
# The chunk vector says "same topic"; the best sentence says "this exact question". Mixed
# 60/40 (on banking77-oos valid, either alone separated in- from out-of-scope worse).
CHUNK_SHARE = 0.6
COVERAGE_WEIGHT = 0.1
# Below this the knowledge base has nothing on the subject at all (vs. something uncertain).
NO_KNOWLEDGE_SCORE = 0.15


def article_score(hit: ArticleHit) -> float:
    """Answerability of one article for the question, in [0, 1]."""
    similarity = hit.dense_similarity
    if hit.sentence_similarity > 0:
        similarity = CHUNK_SHARE * similarity + (1 - CHUNK_SHARE) * hit.sentence_similarity
    dense = min(1.0, max(0.0, (similarity - DENSE_FLOOR) / (DENSE_CEIL - DENSE_FLOOR)))
    coverage = min(1.0, max(0.0, hit.term_coverage))
    score = (1 - COVERAGE_WEIGHT) * dense + COVERAGE_WEIGHT * coverage
    return round(min(1.0, max(0.0, score)), 4)


@dataclass(frozen=True)
class Verdict:
    """The decision for one question: answer or escalate, with the score behind it."""

    confidence: float
    escalate: bool
    reason: EscalationReason | None


def escalation(confidence: float, reason: EscalationReason) -> Verdict:
    """The verdict "hand this to a person", whichever check reached it: this score's
    thresholds, an explicit request, the LLM's refusal or a failure of the answerer."""
    return Verdict(round(confidence, 4), True, reason)


def decide(question: str, hits: list[ArticleHit], threshold: float) -> Verdict:
    """Answer when the best article's score reaches ``threshold``; otherwise say why not."""
    confidence = article_score(hits[0]) if hits else None
    return judge(confidence, asks_for_human(question), threshold)


def judge(confidence: float | None, asks_for_person: bool, threshold: float) -> Verdict:
    """The rule behind :func:`decide`, on the facts it gathered (``confidence`` is ``None``
    when retrieval found nothing). Separate so the evaluation replays exactly this rule at
    every threshold of its curve."""
    if asks_for_person:
        return escalation(confidence or 0.0, "customer_request")
    if confidence is None:
        return escalation(0.0, "no_knowledge")
    if confidence >= threshold:
        return Verdict(confidence, False, None)
    return escalation(
        confidence, "no_knowledge" if confidence < NO_KNOWLEDGE_SCORE else "low_confidence"
    )


def declined_by_model(verdict: Verdict) -> Verdict:
    """The LLM read the articles retrieval let through and found no answer in them (it replied
    ESCALATE): the knowledge base holds none after all. The score is halved so reports show
    that the model doubted what retrieval believed."""
    return escalation(verdict.confidence * 0.5, "no_knowledge")


def failed(verdict: Verdict) -> Verdict:
    """The answerer broke off (a remote model went away mid-answer): a person takes over."""
    return escalation(verdict.confidence, "error")
