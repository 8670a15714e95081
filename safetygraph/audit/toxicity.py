"""Toxicity as a lexicon score. No toxicity classifier runs offline here, so the score says what it is."""

from __future__ import annotations

TOXICITY_METHOD = "lexicon (share of toxic terms, capped at 1; not a classifier)"
TOXIC_TERMS = [
    "idiot",
    "stupid",
    "moron",
    "dumb",
    "loser",
    "shut up",
    "hate you",
    "kill you",
    "go die",
    "worthless",
    "pathetic",
    "disgusting",
    "scum",
    "trash",
    "fuck",
    "shit",
    "bitch",
    "bastard",
    "asshole",
    "retard",
]


def toxicity_sql(col: str) -> str:
    """SQL: a 0-1 lexicon score of ``col``: toxic term occurrences per 20 words, capped at 1."""
    pattern = "\\b(?:" + "|".join(TOXIC_TERMS) + ")"
    hits = f"len(regexp_extract_all(lower({col}), '{pattern}'))"
    words = f"greatest(1, len(string_split({col}, ' ')))"
    # most texts have no toxic term: one case-insensitive match test, the count only on a hit
    return f"CASE WHEN regexp_matches(coalesce({col}, ''), '(?i){pattern}') THEN round(least(1.0, {hits} * 20.0 / {words}), 4) ELSE 0.0 END"
