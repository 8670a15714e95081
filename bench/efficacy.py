"""The efficacy runs (``safetygraph.efficacy``) on a build's published files, each next to the same
run on a shuffled control (labels or pairs permuted with the same seed): the real dataset must beat
its control on each figure it claims.

    # a real-small build first (README: real engines on CPU), then:
    python bench/efficacy.py --data .safetygraph/data --profile real-small [--recipes steering,refusal]

Reads each recipe's LATEST build under ``--data``. Runs each recipe once on the real files and
``--controls`` times on shuffled controls (each draw its own permutation; the model seed and the
held-out split stay). Prints one table per recipe (figure, real, the controls' mean, min and max,
whether the real run beats their mean and every draw, and why a figure is reported but not
claimed) and the seconds each run took; last line a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safetygraph.core.storage import Storage  # noqa: E402
from safetygraph.efficacy import EfficacySkipped  # noqa: E402
from safetygraph.efficacy.runs import ROOTS, run_recipe  # noqa: E402
from safetygraph.sources.registry import load_registry  # noqa: E402

# the figures each recipe claims, and which way is better (+1: higher, -1: lower)
CLAIMS = {
    "steering": {"shift": 1, "moved_share": 1},
    "preference": {"reward_accuracy": 1, "reward_margin": 1, "logp_accuracy_gain": 1},
    "refusal": {"judge_f1": 1, "judge_accuracy": 1, "human_f1": 1, "human_accuracy": 1},
    "circuit_breaker": {
        "selectivity": 1,
        "ds_similarity_train": -1,
        "similarity_gap": 1,
        "ds_similarity": -1,
        "dr_similarity": 1,
    },
}
# a held-out side under this many rows measures one or two rows, not the dataset
MIN_HELDOUT = 5


def unclaimed(recipe: str, figure: str, real) -> str | None:
    """Why ``figure`` is reported but not claimed on this build (one rule per kind of limit: a
    held-out side too small to measure, a before figure that leaves under two pairs to gain, a
    figure a run that moves nothing wins), or None."""
    d, f = real.details, real.figures
    held_out_ds = figure in ("similarity_gap", "ds_similarity")
    if recipe == "circuit_breaker" and held_out_ds and d.get("eval_ds", 0) < MIN_HELDOUT:
        return f"held-out Ds has {d.get('eval_ds', 0)} rows (< {MIN_HELDOUT})"
    if recipe == "circuit_breaker" and figure == "dr_similarity":
        return "a run that moves nothing keeps Dr best; selectivity holds the Dr claim"
    if figure == "logp_accuracy_gain":
        n = d.get("eval_pairs", 0)
        room = (1 - f["logp_accuracy_before"]) * n
        if room < 2:
            return f"before = {f['logp_accuracy_before']:.3f} of {n} pairs: under 2 pairs to gain"
    return None


def compare(recipe: str, real, controls: list) -> list[dict]:
    """Per figure: the real run, the controls' mean, min and max, whether the real run beats
    their mean and every draw, and the reason where the figure is not claimed."""
    rows = []
    for figure, sign in CLAIMS[recipe].items():
        if figure not in real.figures or any(figure not in c.figures for c in controls):
            continue
        values = [c.figures[figure] for c in controls]
        mean = sum(values) / len(values)
        rows.append(
            {
                "figure": figure,
                "real": real.figures[figure],
                "control_mean": round(mean, 4),
                "control_min": min(values),
                "control_max": max(values),
                "beats_mean": (real.figures[figure] - mean) * sign > 0,
                "beats_all": all((real.figures[figure] - v) * sign > 0 for v in values),
                "not_claimed": unclaimed(recipe, figure, real),
            }
        )
    return rows


def _print(recipe: str, build_id: str, real, controls: list, rows: list[dict]) -> None:
    secs = ", ".join(f"{c.seconds:.0f}" for c in controls)
    print(
        f"\n{recipe} ({build_id}; {real.model}, {real.steps} steps; real {real.seconds:.0f}s, "
        f"{len(controls)} controls {secs}s)"
    )
    print(
        f"  {'figure':<20} {'real':>8} {'ctl mean':>8} {'ctl min':>8} {'ctl max':>8}  beats mean/all"
    )
    for r in rows:
        verdict = f"{r['beats_mean']}/{r['beats_all']}"
        if r["not_claimed"]:
            verdict += f"  (not claimed: {r['not_claimed']})"
        print(
            f"  {r['figure']:<20} {r['real']:>8.4f} {r['control_mean']:>8.4f} "
            f"{r['control_min']:>8.4f} {r['control_max']:>8.4f}  {verdict}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("SAFETYGRAPH_BASE_URI", ".safetygraph/data"))
    ap.add_argument("--profile", default="real-small")
    ap.add_argument("--recipes", default="refusal,steering,preference,circuit_breaker")
    ap.add_argument("--controls", type=int, default=3, help="shuffled control draws per recipe")
    args = ap.parse_args()
    storage = Storage(args.data)
    eff = load_registry().profile(args.profile).efficacy
    report = {}
    for recipe in [r.strip() for r in args.recipes.split(",") if r.strip()]:
        if not storage.exists(ROOTS[recipe], "LATEST"):
            print(f"{recipe}: no build under {args.data}/{ROOTS[recipe]}")
            continue
        build_id = storage.read_bytes(ROOTS[recipe], "LATEST").decode()
        try:
            real = run_recipe(recipe, storage, build_id, eff, args.profile)
            controls = [
                run_recipe(recipe, storage, build_id, eff, args.profile, control=k)
                for k in range(1, args.controls + 1)
            ]
        except EfficacySkipped as why:
            print(f"{recipe}: skipped ({why})")
            continue
        rows = compare(recipe, real, controls)
        _print(recipe, build_id, real, controls, rows)
        report[recipe] = {
            "build_id": build_id,
            "compare": rows,
            "seconds": [real.seconds, *(c.seconds for c in controls)],
        }
    claimed = [r for v in report.values() for r in v["compare"] if not r["not_claimed"]]
    print(
        f"\nclaimed figures beating the controls' mean: {sum(r['beats_mean'] for r in claimed)}"
        f" of {len(claimed)}; beating every draw: {sum(r['beats_all'] for r in claimed)}"
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
