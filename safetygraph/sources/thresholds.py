"""A profile's gate thresholds, typed: every key, its type and its default in one place.

``config/profiles.yaml`` sets thresholds per profile (and may override these defaults under
``profiles.defaults.thresholds``); ``parse_thresholds`` validates them when the profiles file
loads: a misspelt key or a value of the wrong type is one error naming the file and the profile,
with the nearest known key. The result is a frozen ``Thresholds`` with every default filled in: the
code reads typed attributes (``profile.thresholds.eval_fraction``) and never carries a default of
its own; functions that take a threshold as a parameter default to the field here
(``Thresholds.near_dup_threshold``).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any


class ThresholdError(ValueError):
    pass


@dataclass(frozen=True)
class Thresholds:
    # per source
    quarantine_rate_max: float = 0.05  # share of rows read that may be quarantined
    generation_error_rate_max: float = 0.02  # share of generation requests that may fail
    min_rows_per_source: int = 1
    attack_outcome_missing_max: float = 0.1  # attack rows without a recorded outcome
    # splits (every recipe)
    eval_fraction: float = 0.1
    eval_min: int = 1
    near_dup_threshold: float = 0.8  # Jaccard of word 3-gram shingles (MinHash/LSH)
    # the refusal recipe and the audit
    seed_compat: bool = True  # the rejection-detection system's files with the export
    toxicity_threshold: float = 0.5  # audit report: rows at or over this score are counted
    confidence_floor: float = 0.6
    max_low_confidence_share: float = 0.2
    review_rate: float = 0.05  # share of each outcome x confidence stratum in the review sample
    scrub_pii: bool = True
    judge_floors: dict[str, float] = field(default_factory=dict)  # on human-labelled rows
    judge_dev_models: list[str] = field(default_factory=list)  # develop on these, report the rest
    coverage_min: dict[str, int] = field(default_factory=dict)  # rows per outcome
    qa: dict[str, float] = field(default_factory=dict)  # QA report thresholds (export/qa.py)
    # a recipe's files whose QA (safetygraph qa on each JSONL file) fails: "block" publishes nothing
    # and fails the files step; "warn" publishes them and fails the files_qa check at WARN
    files_qa: str = "block"
    # the circuit breaker
    retain_harmful_ratio_min: float = 4.0  # Dr:Ds, from the circuit-breaker plan
    # Ds takes real uplift (response_harmful); true adds attempted compliance, labelled as such
    ds_attempted_compliance: bool = False
    dr_ratio: float | None = None  # downsample the retain set to this Dr:Ds (None: off)
    agent_trace_min: int = 0  # agent traces that use tools (the plan: TAU2 >= 300)
    max_seq_length: int = 2048  # stage-2 preflight: longest sample in tokens
    preflight_tokenizer: str = "sample_data/tokenizer"  # folder or HF repo id
    preflight_chat_template: str | None = None  # a .jinja file replacing the tokenizer's own
    preflight_target: str | None = "llama3"  # reference encoder: llama3 or mistral-v1..v7
    over_length: str = "fail"  # samples over max_seq_length: fail or drop (left out, counted)
    # the preference recipe
    preference_error_rate_warn: float = 0.05  # pairs lost to failed requests: warn over this
    preference_error_rate_max: float = 0.5  # over this the source is blocked
    preference_drop_rate_max: float = 0.3
    preference_benign_refusal_max: float = 0.1  # over-refusal ceiling among chosen answers
    preference_train_min: int = 1
    preference_eval_min: int = 1
    # the steering recipe
    steering_min_pairs: int = 1
    steering_balance_tolerance: float = 0.1  # |share with the positive option first - 0.5|
    steering_drop_rate_max: float = 0.5
    # sizes: no universal default, each profile sets them for its data
    refusal_min_rows: int | None = None
    harmful_min: int | None = None
    adversarial_safe_min: int | None = None
    train_min: int | None = None


FIELDS = {f.name: f for f in dataclasses.fields(Thresholds)}
OVER_LENGTH = ("fail", "drop")


def _check_type(key: str, value: Any) -> str | None:
    """Why ``value`` does not fit ``key``'s type, or None."""
    kind = str(FIELDS[key].type)
    if value is None:
        return None if "None" in kind else "must be set (null is not allowed)"
    if kind.startswith("dict"):
        return None if isinstance(value, dict) else "must be a mapping"
    if kind.startswith("list"):
        return None if isinstance(value, list) else "must be a list"
    if kind.startswith("bool"):
        return None if isinstance(value, bool) else "must be true or false"
    if kind.startswith(("int", "float")):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if kind.startswith("int") and not float(value).is_integer():
            return "must be a whole number"
        return None
    if kind.startswith("str"):
        return None if isinstance(value, str) else "must be a string"
    return None


def parse_thresholds(body: dict[str, Any] | None, where: str) -> Thresholds:
    """The thresholds of a profile (``body``: its defaults and its own values merged), checked and
    completed with every default."""
    body = dict(body or {})
    for key, value in body.items():
        if key not in FIELDS:
            near = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f"did you mean '{near[0]}'?" if near else "see safetygraph/sources/thresholds.py"
            raise ThresholdError(f"{where}: unknown threshold '{key}'; {hint}")
        why = _check_type(key, value)
        if why:
            raise ThresholdError(f"{where}: threshold '{key}' {why} (got {value!r})")
    if body.get("over_length", "fail") not in OVER_LENGTH:
        raise ThresholdError(
            f"{where}: threshold 'over_length' must be one of {', '.join(OVER_LENGTH)} "
            f"(got {body['over_length']!r})"
        )
    return Thresholds(**body)


def required(thresholds: Thresholds, name: str, where: str) -> Any:
    """The threshold ``name`` (a field of ``Thresholds``, checked), which the profile must set: the
    size minimums have no universal default. Unset, one error naming the profile and the fix."""
    if name not in FIELDS:
        raise ThresholdError(f"no threshold '{name}'; see safetygraph/sources/thresholds.py")
    value = getattr(thresholds, name)
    if value is None:
        raise ThresholdError(f"{where} sets no threshold '{name}' (add it under thresholds:)")
    return value
