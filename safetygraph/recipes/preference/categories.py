"""Question categories for domain QA sources (MedQuAD and its kind).

The rule, in two parts:

1. A question type given by the source (MedQuAD's ``qtype``) is normalised: lower-cased, every run
   of characters other than letters and digits becomes one underscore, leading and trailing
   underscores go ("genetic changes" -> ``genetic_changes``, "Exams and Tests" -> ``exams_and_tests``).
2. Where the type is missing, it is inferred from the question's wording: the first of
   ``QUESTION_PATTERNS`` (ordered, most specific first) that matches names the category, then
   normalised as in 1. A question no pattern matches is ``other``.

The patterns are written from the phrasings of patient questions ("What are the symptoms of...",
"How to diagnose...", "Is ... inherited?"), not from one file's rows; their agreement with the
source's own types is measured on the real MedQuAD file in the tests.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

# (pattern on the lower-cased question, category); first match wins.
QUESTION_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"\bbrand names? of combination products\b", "brand names of combination products"),
    (r"\bbrand names?\b", "brand names"),
    (
        r"\binteractions? (?:between|with) .* and (?:other )?(?:medications?|drugs?)\b",
        "interactions with medications",
    ),
    (
        r"\binteractions? (?:between|with) .* and (?:herbs?|supplements?)\b",
        "interactions with herbs and supplements",
    ),
    (r"\binteractions? (?:between|with) .* and foods?\b", "interactions with foods"),
    (r"\bforget (?:a|to take a) dose\b|\bmiss(?:ed)? a dose\b", "forget a dose"),
    (r"\bemergency\b|\boverdose\b", "emergency or overdose"),
    (r"\bsevere reaction\b", "severe reaction"),
    (r"\bstorage\b|\bdispos(?:e|al)\b", "storage and disposal"),
    (r"\bdietary\b|\bdiet\b", "dietary"),
    (r"\bside effects?\b|\badverse effects?\b", "side effects"),
    (r"\bimportant warnings?\b", "important warning"),
    (r"\bcontraindications?\b|\bwho should not (?:get|take|use)\b", "contraindication"),
    (r"\bprecautions?\b|\bsafety concerns?\b", "precautions"),
    (r"\bwhy (?:get|be) vaccinated\b", "why get vaccinated"),
    (r"\bhow effective\b|\beffectiveness\b", "how effective is it"),
    (r"\bhow does (?:it|\w+) work\b|\bmechanism of action\b|\baction of\b", "how does it work"),
    (
        r"\bwho should (?:get|take|use)\b|\bwhy is (?:it|\w+) prescribed\b|\bused for\b",
        "indication",
    ),
    (r"\bdosage\b|\bhow much .* (?:take|give)\b|\bdose\b", "usage"),
    (
        r"\bgenetic changes?\b|\bgenes? (?:related|associated|involved)\b|\bmutations?\b",
        "genetic changes",
    ),
    (r"\binherit(?:ed|ance)?\b|\bhereditary\b|\bpassed down\b", "inheritance"),
    (r"\bhow many people\b|\bhow common\b|\bprevalence\b|\bfrequency\b", "frequency"),
    (r"\bsymptoms?\b|\bsigns?\b", "symptoms"),
    (r"\bwhat causes\b|\bcauses? of\b|\bwhy do(?:es)? .* (?:get|develop|happen)\b", "causes"),
    (
        r"\bdiagnos(?:e|ed|is|tic)\b|\btests? (?:for|to)\b|\bexams?\b|\bscreen(?:ing|ed)?\b",
        "exams and tests",
    ),
    (
        r"\btreat(?:ed|ing|ment|ments)?\b|\btherap(?:y|ies)\b|\bcure\b|\bmanage(?:ment)?\b",
        "treatment",
    ),
    (r"\bprevent(?:ed|ion)?\b|\bavoid\b", "prevention"),
    (r"\boutlook\b|\bprognosis\b|\blife expectancy\b", "outlook"),
    (r"\bcomplications?\b", "complications"),
    (r"\bstages?\b|\bstaging\b", "stages"),
    (r"\bresearch\b|\bclinical trials?\b", "research"),
    (r"\bwho is at risk\b|\brisk factors?\b|\bsusceptib", "susceptibility"),
    (r"\bsupport groups?\b|\bfind support\b", "support groups"),
    (
        r"\bsee a doctor\b|\bcontact a (?:medical professional|doctor)\b|\bcall (?:a|my|the) doctor\b",
        "when to contact a medical professional",
    ),
    (r"\bwhat to do for\b|\bhome care\b|\bself[- ]care\b", "considerations"),
    (r"\blearn more\b", "how can i learn more"),
    (r"\bother information\b", "other information"),
    (r"\bwhat (?:is|are)\b|\binformation about\b|\bdefin", "information"),
)
OTHER = "other"


def normalise(value: str | None) -> str | None:
    """A question type as a category key: lower case, non-alphanumeric runs as one underscore."""
    if value is None:
        return None
    key = re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_")
    return key or None


_COMPILED = tuple((re.compile(p), normalise(c)) for p, c in QUESTION_PATTERNS)


def infer(question: str | None) -> str:
    """The category of a question from its wording (part 2 of the rule)."""
    text = (question or "").lower()
    return next((c for rx, c in _COMPILED if rx.search(text)), OTHER)


def categorise(
    question_types: pa.Array | pa.ChunkedArray, questions: pa.Array | pa.ChunkedArray
) -> pa.Array:
    """Per row: the normalised question type where there is one, else the inferred category.

    Vectorised over the distinct missing questions only (types are normalised per distinct value)."""
    if isinstance(question_types, pa.ChunkedArray):
        question_types = question_types.combine_chunks()
    if isinstance(questions, pa.ChunkedArray):
        questions = questions.combine_chunks()
    types = pc.fill_null(pc.utf8_trim_whitespace(question_types.cast(pa.string())), "")
    distinct_types = pc.unique(types).to_pylist()
    normalised = pa.array([normalise(t) or "" for t in distinct_types], pa.string())
    out = pc.take(normalised, pc.index_in(types, value_set=pa.array(distinct_types, pa.string())))
    missing = pc.equal(out, "")
    if not pc.any(missing).as_py():
        return out
    asked = pc.filter(questions.cast(pa.string()), missing)
    distinct_q = pc.unique(asked).to_pylist()
    inferred = pa.array([infer(q) for q in distinct_q], pa.string())
    filled = pc.take(inferred, pc.index_in(asked, value_set=pa.array(distinct_q, pa.string())))
    return pc.replace_with_mask(out, missing, filled)
