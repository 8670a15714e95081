"""The dataset card written with every build: ``README.md`` with the Hugging Face dataset-card YAML
header (licence per source, task categories, size category, one config per file set), then the
sources and their licences and rows, the generation models and their parameters, the judge and
its measured quality, the gates and their figures, the decontamination counts, token statistics,
known limitations and how to load it.

The card is made with ``huggingface_hub``'s ``DatasetCardData`` and ``DatasetCard`` and checked
by :func:`validate_card` (the header parses back into ``DatasetCardData``, every value is one the
Hub accepts, every config's files exist in the build) before the build's manifest is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from safetygraph.core.version import __version__
from safetygraph.export.tokens import token_stats

CARD_FILE = "README.md"

# licence names in the registry -> the Hub's licence identifiers
HUB_LICENSES = {
    "apache-2.0": "apache-2.0",
    "mit": "mit",
    "cc-by-4.0": "cc-by-4.0",
    "cc-by-sa-4.0": "cc-by-sa-4.0",
    "cc-by-nc-4.0": "cc-by-nc-4.0",
    "cc0-1.0": "cc0-1.0",
    "odc-by": "odc-by",
    "odbl": "odbl",
    "llama3.1": "llama3.1",
    "other": "other",
}
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)
TASK_CATEGORIES = {
    "refusal": ["text-classification"],
    "circuit_breaker": ["text-generation"],
    "preference": ["text-generation"],
    "steering": ["text-generation"],
}
# the fields of a row that a trainer reads as text (their strings, nested ones included)
TEXT_FIELDS = {
    "refusal": ("prompt", "response"),
    "circuit_breaker": ("messages", "tools"),
    "preference": ("prompt", "chosen", "rejected"),
    "steering": (
        "question",
        "positive",
        "neutral",
        "answer_matching_behavior",
        "answer_not_matching_behavior",
    ),
}
TAGS = {
    "refusal": ["safety", "refusal", "llm-judge"],
    "circuit_breaker": ["safety", "circuit-breakers", "representation-rerouting"],
    "preference": ["safety", "dpo", "trl", "preference"],
    "steering": ["safety", "steering-vectors", "caa", "persona"],
}


class CardError(ValueError):
    pass


def hub_license(licence: str | None) -> str:
    """A registry licence as the Hub's identifier; anything it does not know is ``other``."""
    return HUB_LICENSES.get((licence or "").strip().lower(), "other")


def size_category(rows: int) -> str:
    for limit, name in SIZE_CATEGORIES:
        if rows < limit:
            return name
    return "n>1T"


@dataclass(frozen=True)
class CardFacts:
    """What the card says about a build, gathered by the asset that writes it."""

    recipe: str
    title: str
    summary: str
    profile: str
    sources: list[dict[str, Any]]  # name, licence, description, location, rows
    configs: dict[str, dict[str, str]]  # config name -> split -> file path in the build
    generation: list[dict[str, Any]] = field(default_factory=list)  # model, backend, params, rows
    judge: list[dict[str, Any]] = field(default_factory=list)  # task, metric, value, method
    gates: list[dict[str, Any]] = field(default_factory=list)  # check, asset, passed, figures
    decontamination: dict[str, Any] = field(default_factory=dict)
    limitations: list[str] = field(default_factory=list)
    tokenizer: str | None = None
    version: str | None = None


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["(none)"]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append(
            "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in r) + " |"
        )
    return out


def _files_and_sources_lines(facts: CardFacts, file_rows: dict[str, int | None]) -> list[str]:
    """The card body's title, summary, build line, files-and-configs and sources sections."""
    body = [f"# {facts.title}", "", facts.summary, ""]
    body += [
        f"Built by [safetygraph](https://github.com/) {__version__} from profile `{facts.profile}`"
        + (f", version `{facts.version}`" if facts.version else "")
        + ". Every file's sha256 and row count is in `manifest.json`; `safetygraph verify` re-checks them.",
        "",
        "## Files and configs",
        "",
    ]
    body += _table(
        ["config", "split", "file", "rows"],
        [
            [name, split, f"`{path}`", file_rows.get(path, "")]
            for name, splits in facts.configs.items()
            for split, path in splits.items()
        ],
    )
    body += ["", "## Sources", ""]
    body += _table(
        ["source", "licence", "rows in this build", "location", "description"],
        [
            [
                s["name"],
                s.get("licence") or "unknown",
                s.get("rows", ""),
                s.get("location", ""),
                s.get("description", ""),
            ]
            for s in facts.sources
        ],
    )
    body += ["", "Each row keeps its `source`: the licence of a row is its source's licence.", ""]
    return body


def _generation_judge_gates_lines(facts: CardFacts) -> list[str]:
    """The card body's generation-models, judge-quality and gates sections."""
    body = ["## Generation models and parameters", ""]
    body += _table(
        ["model", "backend", "temperature", "max_tokens", "rows"],
        [
            [
                g.get("model") or "(recorded in the source)",
                g.get("backend"),
                g.get("temperature", ""),
                g.get("max_tokens", ""),
                g.get("rows", ""),
            ]
            for g in facts.generation
        ],
    )
    body += ["", "## Judge and its measured quality", ""]
    body += (
        _table(
            ["task", "metric", "value", "measured on"],
            [[j["task"], j["metric"], j["value"], j.get("half", "")] for j in facts.judge],
        )
        if facts.judge
        else ["No source of this build carries human labels, so the judge was not measured on it."]
    )
    body += [
        "",
        "## Gates",
        "",
        "The blocking checks that guarded these files, as last evaluated:",
        "",
    ]
    body += _table(
        ["check", "asset", "result", "figures"],
        [
            [
                g["check"],
                g["asset"],
                "pass" if g["passed"] else "FAIL",
                ", ".join(f"{k}={v}" for k, v in g.get("figures", {}).items()),
            ]
            for g in facts.gates
        ],
    )
    return body


def _decontamination_lines(d: dict[str, Any]) -> list[str]:
    """The card body's decontamination section from the build's decontamination figures."""
    body = ["", "## Decontamination", ""]
    if d.get("eval_sets"):
        body += [
            f"Checked against the evaluation sets {', '.join(f'`{s}`' for s in d['eval_sets'])} "
            f"(word {d.get('ngram')}-gram overlap, containment and one-word edits from {d.get('min_words')} "
            f"words, MinHash Jaccard >= {d.get('jaccard')}): {d.get('rows_removed', 0)} rows "
            f"({d.get('prompts_removed', 0)} prompts) removed, {d.get('rows_eval_only', 0)} rows of "
            "evaluation sets kept on the eval side only.",
            "",
        ]
        body += _table(
            ["evaluation set", "rows removed"],
            [[k, v] for k, v in d.get("removed_by_eval_set", {}).items()],
        )
        body += [""]
        body += _table(
            ["rule", "rows removed"], [[k, v] for k, v in d.get("removed_by_method", {}).items()]
        )
    else:
        body += ["The profile declares no evaluation set: this build was not decontaminated."]
    return body


def _tokens_limitations_loading_lines(
    facts: CardFacts, tokens: dict[str, dict[str, Any]] | str | None
) -> list[str]:
    """The card body's token-statistics, known-limitations and how-to-load sections."""
    body = ["", "## Token statistics", ""]
    if isinstance(tokens, dict) and tokens:
        body += [
            "Tokens per row of the text a trainer reads ("
            + ", ".join(f"`{f}`" for f in TEXT_FIELDS[facts.recipe])
            + f"), with `{facts.tokenizer}` (no chat template, no special tokens):",
            "",
        ]
        body += _table(
            ["file", "rows", "tokens", "mean", "p50", "p95", "max"],
            [
                [f"`{p}`", t["rows"], t["tokens"], t["mean"], t["p50"], t["p95"], t["max"]]
                for p, t in tokens.items()
            ],
        )
    else:
        body += [f"Not computed: {tokens or 'no tokenizer in the profile'}."]
    body += ["", "## Known limitations", ""]
    body += [f"- {x}" for x in facts.limitations] or ["- (none recorded)"]
    first = next(iter(facts.configs), "default")
    body += [
        "",
        "## How to load",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("path/to/this/folder", "{first}")  # or the Hub repo id after safetygraph push',
        "```",
        "",
    ]
    return body


def render_card(
    facts: CardFacts,
    file_rows: dict[str, int | None],
    tokens: dict[str, dict[str, Any]] | str | None = None,
) -> str:
    """The README.md text: the YAML header from ``DatasetCardData``, then the body."""
    from huggingface_hub import DatasetCard, DatasetCardData

    licences = sorted({hub_license(s.get("licence")) for s in facts.sources}) or ["other"]
    rows = sum(
        int(file_rows.get(p) or 0) for splits in facts.configs.values() for p in splits.values()
    )
    configs = [
        {
            "config_name": name,
            "data_files": [{"split": split, "path": path} for split, path in splits.items()],
            **({"default": True} if i == 0 else {}),
        }
        for i, (name, splits) in enumerate(facts.configs.items())
    ]
    data = DatasetCardData(
        license=licences[0] if len(licences) == 1 else licences,
        language=["en"],
        task_categories=TASK_CATEGORIES[facts.recipe],
        size_categories=[size_category(rows)],
        pretty_name=facts.title,
        tags=TAGS[facts.recipe],
        configs=configs,
    )
    if "other" in licences:
        data.license_name = "see-sources"  # the Sources section lists each source's licence
    body = _files_and_sources_lines(facts, file_rows)
    body += _generation_judge_gates_lines(facts)
    body += _decontamination_lines(facts.decontamination)
    body += _tokens_limitations_loading_lines(facts, tokens)
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)
    return DatasetCard(content).content


def validate_card(content: str, exists: Callable[[str], bool] | None = None) -> list[str]:
    """Problems with a card: the header must parse back into ``DatasetCardData`` (through
    ``huggingface_hub.DatasetCard``) with a Hub licence, a size category, task categories and
    configs whose files exist (``exists(path)``, when given)."""
    from huggingface_hub import DatasetCard

    try:
        card = DatasetCard(content)
    except Exception as exc:  # noqa: BLE001 - the parser's own message is the problem
        return [f"the card does not parse: {exc}"]
    data = card.data.to_dict()
    problems = []
    licences = data.get("license")
    for lic in licences if isinstance(licences, list) else [licences]:
        if lic not in HUB_LICENSES.values():
            problems.append(f"license {lic!r} is not a Hub licence identifier")
    if "other" in (licences if isinstance(licences, list) else [licences]) and not data.get(
        "license_name"
    ):
        problems.append("license 'other' needs license_name")
    sizes = data.get("size_categories") or []
    if len(sizes) != 1 or sizes[0] not in {n for _, n in SIZE_CATEGORIES} | {"n>1T"}:
        problems.append(f"size_categories {sizes!r} is not one Hub size category")
    if not data.get("task_categories"):
        problems.append("no task_categories")
    configs = data.get("configs") or []
    if not configs:
        problems.append("no configs")
    for c in configs:
        files = c.get("data_files") or []
        if not c.get("config_name") or not files:
            problems.append(f"config {c!r} needs config_name and data_files")
        for f in files:
            if exists is not None and not exists(f["path"]):
                problems.append(f"config {c.get('config_name')}: {f['path']} is not in the build")
    if not card.text.strip():
        problems.append("the card has no body")
    return problems


def card_file(
    facts: CardFacts,
    entries: list[dict[str, Any]],
    opener: Callable[[str], IO[bytes]],
    tokenizer_loader: Callable[[], Any] | None,
) -> tuple[str, dict[str, Any] | str | None]:
    """The README.md of a build whose files are ``entries`` (path, rows), read through ``opener``,
    and its token statistics (every JSONL file of its configs; a string saying why when the
    tokenizer cannot be loaded): rendered and validated (a card that does not validate stops the
    build: CardError)."""
    file_rows = {e["path"]: e.get("rows") for e in entries}
    paths = [
        p for splits in facts.configs.values() for p in splits.values() if p.endswith(".jsonl")
    ]
    tokens: dict | str | None = None
    if tokenizer_loader is not None:
        try:
            tok = tokenizer_loader()
        except Exception as exc:  # noqa: BLE001 - the card says why there are no token figures
            tokens = f"the tokenizer {facts.tokenizer} could not be loaded ({exc})"
        else:
            tokens = token_stats(opener, paths, tok, TEXT_FIELDS[facts.recipe])
    content = render_card(facts, file_rows, tokens)
    problems = validate_card(content, lambda p: p in file_rows)
    if problems:
        raise CardError(f"{facts.recipe} dataset card: " + "; ".join(problems))
    return content, tokens


def generation_summary(table) -> list[dict[str, Any]]:
    """Rows per generation model, backend, temperature and max_tokens of a recipe's rows (the
    answers a source recorded have no model: ``backend`` source)."""
    from safetygraph.core import duck
    from safetygraph.core.tables import as_relation

    con = duck.connect()
    t = as_relation(con, table, "t")
    rows = duck.rows(
        con,
        f"""SELECT generation_model, generation_backend,
                   json_extract(generation_params, '$.temperature')::DOUBLE,
                   json_extract(generation_params, '$.max_tokens')::BIGINT, count(*)
            FROM (SELECT generation_model, generation_backend,
                         CASE WHEN json_valid(generation_params) THEN generation_params END AS generation_params
                  FROM {t})
            GROUP BY ALL ORDER BY 5 DESC, 1""",
    )
    return [
        {
            "model": m,
            "backend": b,
            "temperature": "" if tmp is None else tmp,
            "max_tokens": "" if mt is None else mt,
            "rows": n,
        }
        for m, b, tmp, mt, n in rows
    ]


def _public_location(spec: Any) -> str:
    """Where a source comes from, as a card may say it: the dataset id or URL; for a local file
    only its name (the machine's folders stay out of a published card)."""
    if spec.kind == "local":
        return "local file " + os.path.basename(str(spec.location.get("path", "")))
    return spec.describe_location()


def source_facts(specs: Iterable[Any], rows: dict[str, int]) -> list[dict[str, Any]]:
    """The sources of a build (registry entries with the profile's overrides) with their rows."""
    return [
        {
            "name": s.name,
            "licence": s.licence,
            "description": s.description,
            "location": _public_location(s),
            "rows": rows.get(s.name, 0),
        }
        for s in specs
    ]


def judge_rows(judge_quality) -> list[dict[str, Any]]:
    """The build's judge's figures from ``judge_quality`` (the reported part when there is one,
    else all labelled rows, else the shipped labelled set): accuracy, precision, recall, F1, kappa
    and FPR per task."""
    rows = [r for r in judge_quality.to_pylist() if r["method"] == "judge" and r["model"] == "all"]
    halves = {r["half"] for r in rows}
    half = next((h for h in ("report", "all", "shipped") if h in halves), "all")
    keep = ("n", "accuracy", "precision", "recall", "f1", "kappa", "fpr")
    return [
        {"task": r["task"], "metric": r["metric"], "value": round(r["value"], 4), "half": half}
        for r in rows
        if r["half"] == half and r["metric"] in keep
    ]
