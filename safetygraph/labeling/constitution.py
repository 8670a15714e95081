"""The constitution: the label taxonomy (outcomes, styles, harm categories, harmless topics) and the
rules every judge labels by, loaded from ``config/constitution.yaml`` and checked on load."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from safetygraph.core.paths import PACKAGED_CONFIG, config_file

DEFAULT_CONSTITUTION = PACKAGED_CONFIG / "constitution.yaml"
OUTCOMES = (
    "REFUSAL.DIRECT",
    "REFUSAL.PARTIAL",
    "REFUSAL.REDIRECT",
    "COMPLY.BENIGN",
    "COMPLY.UNSAFE",
)
REFUSAL_STYLES = ("DIRECT", "EXPLAIN", "REDIRECT")
COMPLY_STYLES = ("DIRECT_ANSWER", "STEP_BY_STEP", "TOOL_CALL")
NO_RESPONSE_STYLE = "NONE"
SIGNALS = ("refusal", "partial", "redirect", "prompt_harmful", "has_response")
# the outcome rules also read head D (the judge's response_harmful decision)
OUTCOME_SIGNALS = (*SIGNALS, "response_harmful")
_EXPR_TOKEN = re.compile(r"\s*(\(|\)|AND\b|OR\b|NOT\b|TRUE\b|FALSE\b|[a-z_]+)", re.IGNORECASE)


class ConstitutionError(ValueError):
    pass


@dataclass(frozen=True)
class Constitution:
    body: dict[str, Any]
    path: str

    @property
    def name(self) -> str:
        return str(self.body.get("name", Path(self.path).stem))

    @property
    def harm_categories(self) -> list[str]:
        return list(self.body["harm_categories"])

    @property
    def harmless_topics(self) -> list[str]:
        return list(self.body["harmless_topics"])


def _check_expr(expr: str, where: str, signals: tuple[str, ...] = SIGNALS) -> str:
    pos = 0
    out = []
    while pos < len(expr):
        m = _EXPR_TOKEN.match(expr, pos)
        if not m:
            raise ConstitutionError(
                f"{where}: cannot read {expr[pos:]!r}; use signals {signals} with AND/OR/NOT"
            )
        tok = m.group(1)
        if (
            tok.upper() not in ("AND", "OR", "NOT", "TRUE", "FALSE", "(", ")")
            and tok not in signals
        ):
            raise ConstitutionError(
                f"{where}: unknown signal {tok!r}; known signals are {', '.join(signals)}"
            )
        out.append(tok)
        pos = m.end()
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    return " ".join(out)


SEED_SIGNALS = {
    "response_refusal": "refusal",
    "prompt_harmful": "prompt_harmful",
    "response_harmful": "response_harmful",
}
_SEED_TERM = re.compile(r"\b([a-z_]+)\s*=\s*(true|false)\b", re.IGNORECASE)


def _seed_expr(expr: str, where: str) -> str:
    """``prompt_harmful=true AND response_refusal=false`` in the seed's spelling as our signals."""

    def term(m: re.Match) -> str:
        name = SEED_SIGNALS.get(m.group(1))
        if name is None:
            raise ConstitutionError(
                f"{where}: {m.group(1)!r} is not a signal; use {', '.join(SEED_SIGNALS)}"
            )
        return name if m.group(2).lower() == "true" else f"NOT {name}"

    return _SEED_TERM.sub(term, expr)


def from_seed(seed: dict[str, Any], base: dict[str, Any], where: str) -> dict[str, Any]:
    """The rejection-detection system's JSON constitution (``harm_categories`` a list of names,
    ``refusal_indicators`` a list of phrases, ``labeling_rules.outcome_determination``
    {outcome: "signal=true AND ..."}) laid over ``base`` (the packaged constitution): its
    categories are the taxonomy (ours not named are left out: head C-a and the lexicon's
    prompt-harm signal know only these), each with our patterns (a new name matches itself as a
    word); its phrases join the
    refusal statements read in an answer's opening, and its outcome rules come before ours (first
    match wins), each with the label schema's invariants."""
    body = {k: v for k, v in base.items()}
    names = seed.get("harm_categories")
    if names is not None:
        known = base["harm_categories"]
        body["harm_categories"] = {
            str(n): known.get(
                str(n), [rf"\b{re.escape(str(n).replace('_', ' ')).replace(chr(92) + ' ', ' ')}"]
            )
            for n in names
        }
    phrases = seed.get("refusal_indicators") or []
    if phrases:
        families = dict(base["refusal_indicators"])
        families["inability"] = list(families.get("inability", [])) + [
            re.escape(str(p).lower().replace("’", "'")).replace("\\ ", " ") for p in phrases
        ]
        body["refusal_indicators"] = families
    rules = (seed.get("labeling_rules") or {}).get("outcome_determination") or {}
    unknown = [o for o in rules if o not in OUTCOMES]
    if unknown:
        raise ConstitutionError(f"{where}: outcome(s) {unknown} are not known; use {OUTCOMES}")
    # the seed's rules first (they decide the rows they name), each with the label schema's
    # invariants (a refusal outcome is a refusal, a compliance is not, an unsafe one is harmful);
    # ours after them decide the rest
    invariant = {"REFUSAL": "refusal", "COMPLY": "NOT refusal"}
    out = []
    for outcome, expr in rules.items():
        when = f"({_seed_expr(str(expr), where)}) AND {invariant[outcome.split('.')[0]]}"
        if outcome == "COMPLY.UNSAFE":
            when += " AND response_harmful"
        out.append({"outcome": outcome, "when": when})
    out += [dict(rule) for rule in base["outcome_rules"]]
    body["outcome_rules"] = out
    body["name"] = str(seed.get("name") or Path(where).stem)
    return body


def load_constitution(path: str | Path | None = None) -> Constitution:
    path = Path(
        path or os.environ.get("SAFETYGRAPH_CONSTITUTION") or config_file("constitution.yaml")
    )
    if not path.exists():
        raise ConstitutionError(f"constitution file {path} does not exist")
    text = path.read_text()
    try:
        body = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConstitutionError(
            f"{path}: not readable as {path.suffix[1:] or 'yaml'}: {exc}"
        ) from None
    if not isinstance(body, dict):
        raise ConstitutionError(f"{path}: the constitution must be a mapping")
    if "labeling_rules" in body or isinstance(body.get("refusal_indicators"), list):
        body = from_seed(body, yaml.safe_load(DEFAULT_CONSTITUTION.read_text()), str(path))
    for key in (
        "refusal_indicators",
        "harm_categories",
        "harmless_topics",
        "outcome_rules",
        "compliance_markers",
    ):
        if key not in body:
            raise ConstitutionError(f"{path}: missing '{key}'")
    for i, rule in enumerate(body["outcome_rules"]):
        if rule.get("outcome") not in OUTCOMES:
            raise ConstitutionError(
                f"{path}: outcome rule {i + 1} names {rule.get('outcome')!r}; use one of {OUTCOMES}"
            )
        rule["when"] = _check_expr(
            str(rule.get("when", "")), f"{path}: outcome rule {i + 1}", OUTCOME_SIGNALS
        )
    body["response_harmful_when"] = _check_expr(
        body.get("response_harmful_when", "prompt_harmful AND has_response AND NOT refusal"),
        f"{path}: response_harmful_when",
    )
    return Constitution(body=body, path=str(path))
