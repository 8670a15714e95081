"""The five seeds' command-line flags on ``safetygraph build RECIPE``, turned into the build's
profile set (``sources.profile_set``: laid over the profile for this build only):

- every recipe: ``--seed`` (S2), ``--sources a,b`` (the recipe's own sources: the preference
  recipe's questions, the steering recipe's scenarios, else the profile's sources),
  ``--datasets a b`` (S0's spelling of ``--sources``), ``--judge NAME`` (S0's judge choice),
  ``--constitution FILE`` (ours in YAML, or S0's JSON);
- refusal: ``--target-samples N`` (S2: the export holds N rows);
- steering (S4, psyctl): ``--personality``, ``--limit-samples``, ``--dataset``, ``--model`` (a
  Hugging Face model answering locally through transformers), ``--openrouter-model`` (a model of an
  OpenAI-compatible server, OpenRouter by default), ``--openrouter-max-workers``; the API key only
  from the environment (SAFETYGRAPH_LLM_API_KEY), never from the command line.
"""

from __future__ import annotations

import argparse
import os

OPENROUTER_URL = "https://openrouter.ai/api/v1"
STEERING_FLAGS = ("personality", "limit_samples", "dataset", "model", "openrouter_model")


def add_flags(b: argparse.ArgumentParser) -> None:
    b.add_argument(
        "--sources",
        default="",
        help="comma-separated: only these sources (the preference and steering recipes: their "
        "own sources, any registry source)",
    )
    b.add_argument(
        "--datasets", nargs="+", default=None, help="the same as --sources, space-separated"
    )
    b.add_argument(
        "--seed", type=int, default=None, help="the build's seed (default: the profile's)"
    )
    b.add_argument(
        "--judge",
        default=None,
        help="the judge of every labelling step: combined (default), heuristic, classifier, llm, "
        "two_pass, wildguard, llamaguard",
    )
    b.add_argument(
        "--constitution",
        default=None,
        help="the constitution every judge labels by: YAML (ours) or the rejection-detection "
        "system's JSON (harm_categories, refusal_indicators, labeling_rules)",
    )
    b.add_argument(
        "--target-samples", type=int, default=None, help="refusal: the export holds this many rows"
    )
    b.add_argument(
        "--personality",
        default=None,
        help="steering: the traits to build, comma-separated, any case (psyctl's \"Extroversion, "
        "Neuroticism\"); default: the profile's",
    )
    b.add_argument(
        "--limit-samples", type=int, default=None, help="steering: scenarios per trait at most"
    )
    b.add_argument("--dataset", default=None, help="steering: the registry source of the scenarios")
    b.add_argument(
        "--model",
        default=None,
        help="steering: a Hugging Face model answering through transformers",
    )
    b.add_argument(
        "--openrouter-model",
        default=None,
        help="steering: a model of an OpenAI-compatible server (SAFETYGRAPH_OPENAI_BASE_URL, default "
        "OpenRouter's); the key from SAFETYGRAPH_LLM_API_KEY",
    )
    b.add_argument("--openrouter-max-workers", type=int, default=None, help="requests in flight")
    b.add_argument(
        "--openrouter-api-key",
        default=None,
        help=argparse.SUPPRESS,  # refused: keys come only from the environment
    )


def _names(args: argparse.Namespace) -> list[str]:
    names = [x.strip() for x in args.sources.split(",") if x.strip()]
    return names + [x.strip(", ") for x in (args.datasets or []) if x.strip(", ")]


def _steering_flags(args: argparse.Namespace, env: dict[str, str]) -> tuple[dict, dict]:
    """(the steering settings of psyctl's flags, the generation configs they set), with the
    OpenRouter endpoint and the request concurrency added to ``env``."""
    steering: dict = {}
    if args.personality is not None:
        steering["traits"] = [t.strip() for t in args.personality.split(",") if t.strip()]
    if args.limit_samples is not None:
        steering["limit"] = args.limit_samples
    if args.dataset is not None:
        steering["sources"] = [args.dataset]
    if args.model and args.openrouter_model:
        raise SystemExit("safetygraph build: give --model or --openrouter-model, not both")
    configs = {}
    if args.model:
        configs = {"steering": {"backend": "transformers", "model": args.model}}
    if args.openrouter_model:
        configs = {"steering": {"backend": "openai", "model": args.openrouter_model}}
        if not os.environ.get("SAFETYGRAPH_OPENAI_BASE_URL"):
            env["SAFETYGRAPH_OPENAI_BASE_URL"] = OPENROUTER_URL
    for flag, value in (
        ("--openrouter-max-workers", args.openrouter_max_workers),
        ("--limit-samples", args.limit_samples),
    ):
        if value is not None and value < 1:
            raise SystemExit(f"safetygraph build: {flag} {value}: give a number of at least 1")
    if args.openrouter_max_workers is not None:
        env["SAFETYGRAPH_LLM_MAX_CONCURRENCY"] = str(args.openrouter_max_workers)
    return steering, configs


def profile_set(
    args: argparse.Namespace, recipes: tuple[str, ...]
) -> tuple[dict, tuple[str, ...], dict[str, str]]:
    """(the profile set of the flags, the profile sources to build: --sources of the refusal and
    circuit-breaker recipes, the environment variables of this build: set by the caller for the
    build only). Raises SystemExit with one line for a flag the recipes do not take."""
    if args.openrouter_api_key is not None:
        raise SystemExit(
            "safetygraph build: --openrouter-api-key is not taken on the command line (it would be "
            "in your shell history and process list); export SAFETYGRAPH_LLM_API_KEY instead"
        )
    env: dict[str, str] = {}
    if args.constitution is not None:
        path = os.path.abspath(args.constitution)
        if not os.path.isfile(path):
            raise SystemExit(f"safetygraph build: --constitution {args.constitution}: no such file")
        env["SAFETYGRAPH_CONSTITUTION"] = path
    body: dict = {}
    names = _names(args)
    if recipes in (("preference",), ("steering",)) and names:
        body[recipes[0]] = {"sources": names}
        names = []
    elif names:  # the merge reads these sources only (any registry source)
        body["sources"] = names
    steering, configs = _steering_flags(args, env)
    if (steering or configs) and "steering" not in recipes:
        raise SystemExit(
            "safetygraph build: --personality, --limit-samples, --dataset, --model and "
            "--openrouter-model are the steering recipe's flags"
        )
    if args.target_samples is not None and "refusal" not in recipes:
        raise SystemExit("safetygraph build: --target-samples is the refusal recipe's flag")
    if configs:
        body["configs"] = configs
    if steering:
        body["steering"] = {**body.get("steering", {}), **steering}
    for key in ("seed", "judge", "target_samples"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    return body, tuple(names), env
