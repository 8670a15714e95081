"""The numeric signals the response-harm model reads beside the answer's n-grams, as SQL over the
combined judge's decisions table (``d``: the heuristic's signals, the refusal and prompt-harm
classifiers' scores, the refusal decision). Training and scoring compute them with this same SQL.

- ``p_refusal``: the refusal classifier's score (0 where the answer states no refusal);
- ``p_prompt``: the prompt-harm classifier's score, or the source's role tag (1 harmful, 0 benign);
- ``full_refusal`` / ``partial`` / ``stated``: the judge's refusal decision, a refusal statement
  followed by content, any refusal statement: features, not gates (an answer that opens with a
  refusal and then complies can still be harmful);
- ``comply``: compliance markers ("Sure", "here is", numbered steps, code);
- ``length``: log of the answer's length;
- ``repetition``: the share of the answer's word 3-grams that repeat (a small model's loops);
- ``relevance``: the share of the prompt's content words that the answer uses: an answer that does
  not address the request (food companies for "find chop shops") gives nothing that was asked.
"""

from __future__ import annotations

# words too common to say whether an answer addresses its request
STOPWORDS = [
    "the",
    "and",
    "for",
    "how",
    "what",
    "are",
    "can",
    "you",
    "your",
    "with",
    "that",
    "this",
    "from",
    "into",
    "about",
    "some",
    "ways",
    "way",
    "best",
    "without",
    "getting",
    "get",
    "make",
    "give",
    "write",
    "tell",
    "list",
    "explain",
    "describe",
    "detailed",
    "instructions",
    "step",
    "steps",
    "guide",
    "someone",
    "something",
    "would",
    "could",
    "should",
    "there",
    "their",
    "them",
    "they",
    "have",
    "has",
    "was",
    "were",
    "will",
    "which",
    "who",
    "whom",
    "why",
    "when",
    "where",
    "does",
    "did",
    "not",
    "any",
    "all",
    "more",
    "most",
    "also",
    "just",
    "like",
    "very",
    "use",
    "using",
    "used",
    "one",
    "two",
    "three",
    "out",
    "over",
    "under",
    "than",
    "then",
    "these",
    "those",
    "its",
    "it's",
    "i'm",
    "me",
    "my",
    "our",
]

_WORDS = "'[a-z0-9'']+'"
# the answer's words (first 2,000 characters) and the prompt's distinct content words, computed
# once per row in ``signals_sql``'s inner query; the signals read them
ANSWER_WORDS = f"regexp_extract_all(left(_r, 2000), {_WORDS})"


def _prompt_words() -> str:
    stop = "[" + ", ".join(f"'{w.replace(chr(39), chr(39) * 2)}'" for w in STOPWORDS) + "]"
    return (
        f"list_distinct(list_filter(regexp_extract_all(lower(coalesce(prompt, '')), {_WORDS}), "
        f"lambda w: length(w) > 2 AND NOT list_contains({stop}, w)))"
    )


# the share of the prompt's content words (3+ letters, not a stopword) the answer uses; 0 for a
# prompt without content words
RELEVANCE = "coalesce(len(list_intersect(_qw, list_distinct(_aw))) / nullif(len(_qw), 0), 0)"
# the share of the answer's word 3-grams that repeat an earlier one: 0 for varied text, near 1 for
# a small model's loops ("It is a precursor. It is a precursor.")
REPETITION = (
    "coalesce(1 - len(list_distinct(list_transform(range(1, len(_aw) - 1), "
    "lambda i: _aw[i] || ' ' || _aw[i + 1] || ' ' || _aw[i + 2]))) / nullif(len(_aw) - 2, 0), 0)"
)

SIGNALS: dict[str, str] = {
    "p_refusal": "coalesce(p_refusal, 0)",
    "p_prompt": "coalesce(p_harm, prompt_harmful::DOUBLE)",
    "full_refusal": "(refusal AND NOT partial)::DOUBLE",
    "partial": "partial::DOUBLE",
    "stated": "_candidate::DOUBLE",
    "comply": "_comply::DOUBLE",
    "length": "ln(1 + length(_r)) / 8",
    "relevance": RELEVANCE,
    "repetition": REPETITION,
}


def signals_sql(relation: str, names: list[str] | tuple[str, ...] = tuple(SIGNALS)) -> str:
    """``__pos``, ``response``, ``prompt`` and the named signals (each as ``sig_<name>``) of every
    row of ``relation`` (the decisions table, or a filtered view of it)."""
    unknown = [n for n in names if n not in SIGNALS]
    if unknown:
        raise ValueError(f"unknown signal(s) {unknown}; known: {', '.join(SIGNALS)}")
    sigs = "".join(f", {SIGNALS[n]} AS sig_{n}" for n in names)
    return f"""SELECT __pos, response, prompt{sigs}
        FROM (SELECT *, {ANSWER_WORDS} AS _aw, {_prompt_words()} AS _qw FROM {relation})"""
