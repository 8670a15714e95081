"""The constitution: the label taxonomy (outcomes, styles, harm categories, harmless topics) and the
rules every judge labels by, loaded from ``config/constitution.yaml`` and checked on load."""

from __future__ import annotations

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


def load_constitution(path: str | Path | None = None) -> Constitution:
    path = Path(
        path or os.environ.get("SAFETYGRAPH_CONSTITUTION") or config_file("constitution.yaml")
    )
    if not path.exists():
        raise ConstitutionError(f"constitution file {path} does not exist")
    body = yaml.safe_load(path.read_text())
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
