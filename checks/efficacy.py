"""The efficacy floors: each recipe's headline figure against the profile's floor
(``efficacy.*_min``). At WARN by default, so a weak effect is visible and alerts without blocking;
``efficacy.policy: block`` reports it at ERROR."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetCheckResult, AssetCheckSeverity, asset_check
from safetygraph.location.pipeline_assets.keys import EFFICACY
from safetygraph.location.resources import BuildConfig

from safetygraph.efficacy.runs import HEADLINES


def _floor_check(recipe: str):
    key = EFFICACY[recipe][0]
    figure, floor_name, meaning = HEADLINES[recipe]

    @asset_check(
        asset=key,
        name="efficacy_floor",
        blocking=True,
        description=f"{figure} ({meaning}) at least efficacy.{floor_name}; WARN unless "
        "efficacy.policy is block",
    )
    def _check(figures: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        eff = settings.active().efficacy
        floor = float(getattr(eff, floor_name))
        row = figures.filter(pc.equal(figures["figure"], figure))
        value = row["value"][0].as_py() if row.num_rows else None
        return AssetCheckResult(
            passed=value is not None and value >= floor,
            severity=AssetCheckSeverity.ERROR if eff.policy == "block" else AssetCheckSeverity.WARN,
            metadata={figure: value, "floor": floor, "policy": eff.policy},
        )

    return _check


def dataset() -> list:
    return [_floor_check(r) for r in EFFICACY]
