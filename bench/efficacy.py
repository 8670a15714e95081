"""The efficacy runs (``safetygraph.efficacy``) on a build's published files, each next to the same
run on a shuffled control (labels or pairs permuted with the same seed): the real dataset must beat
its control on each figure it claims.

    # a real-small build first (README: real engines on CPU), then:
    python bench/efficacy.py --data .safetygraph/data --profile real-small [--recipes steering,refusal]

Reads each recipe's LATEST build under ``--data``. Prints one table per recipe (figure, real,
control, real - control, whether the real run is on the right side) and the seconds each run took;
last line a JSON object with every figure.
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
    "preference": {"logp_accuracy_gain": 1, "reward_accuracy": 1, "reward_margin": 1},
    "refusal": {"judge_f1": 1, "judge_accuracy": 1, "human_f1": 1, "human_accuracy": 1},
    "circuit_breaker": {"similarity_gap": 1, "ds_similarity": -1, "dr_similarity": 1},
}


def compare(recipe: str, real: dict, control: dict) -> list[dict]:
    rows = []
    for figure, sign in CLAIMS[recipe].items():
        if figure in real and figure in control:
            diff = real[figure] - control[figure]
            rows.append(
                {
                    "figure": figure,
                    "real": real[figure],
                    "control": control[figure],
                    "diff": round(diff, 4),
                    "beats_control": diff * sign > 0,
                }
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("SAFETYGRAPH_BASE_URI", ".safetygraph/data"))
    ap.add_argument("--profile", default="real-small")
    ap.add_argument("--recipes", default="refusal,steering,preference,circuit_breaker")
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
            control = run_recipe(recipe, storage, build_id, eff, args.profile, control=True)
        except EfficacySkipped as why:
            print(f"{recipe}: skipped ({why})")
            continue
        rows = compare(recipe, real.figures, control.figures)
        print(
            f"\n{recipe} ({build_id}; {real.model}, {real.steps} steps; real {real.seconds:.0f}s, control {control.seconds:.0f}s)"
        )
        print(f"  {'figure':<22} {'real':>9} {'control':>9} {'diff':>9}  beats control")
        for r in rows:
            print(
                f"  {r['figure']:<22} {r['real']:>9.4f} {r['control']:>9.4f} {r['diff']:>9.4f}  {r['beats_control']}"
            )
        report[recipe] = {
            "build_id": build_id,
            "real": real.as_dict(),
            "control": control.as_dict(),
            "compare": rows,
        }
    print(
        json.dumps(
            {
                r: {
                    "compare": v["compare"],
                    "seconds": [v["real"]["seconds"], v["control"]["seconds"]],
                }
                for r, v in report.items()
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
