"""eval_prompts: the evaluation sets the profile declares; the decontamination tables of the
recipes read them (the rules: safetygraph/audit/decont.py)."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Failure, MetadataValue, asset
from safetygraph.location.pipeline_assets.keys import OWNER
from safetygraph.location.pipeline_assets.metadata import counts_table
from safetygraph.location.resources import BuildConfig

from safetygraph.audit.decont import (
    CONTAMINATION_SCHEMA,
    EVAL_PROMPTS_SCHEMA,
    contamination,
    summary,
)
from safetygraph.sources.errors import SourceError
from safetygraph.sources.eval_prompts import eval_prompt_tables
from safetygraph.sources.eval_sets import EvalSetError
from safetygraph.sources.registry import RegistryError

GROUP = "decontamination"


def decontaminate(
    settings: BuildConfig, samples, eval_prompts: pa.Table, eval_only: bool = True
) -> pa.Table:
    """The contamination table of a recipe's set under the profile's rules (an empty table when
    the profile turns the step off: the recipes' checks still look at their training files).
    ``eval_only``: whether the recipe has an eval side for the rows of evaluation sets it builds
    from; without one (steering) they are removed."""
    decont = settings.active().decontamination
    if not decont.enabled:
        return CONTAMINATION_SCHEMA.empty_table()
    table = contamination(samples, eval_prompts, decont.rules, decont.eval_only)
    if eval_only:
        return table
    action = pa.array(["removed"] * table.num_rows, pa.string())
    return table.set_column(table.schema.get_field_index("action"), "action", action)


def eval_only_hashes(table: pa.Table) -> pa.Array:
    """The prompt hashes a decontamination table holds for the eval side only."""
    return table.filter(pc.equal(table.column("action"), "eval_only")).column("prompt_hash")


def decontamination_metadata(table: pa.Table) -> dict:
    s = summary(table)
    return {
        "rows_removed": s["rows_removed"],
        "rows_eval_only": s["rows_eval_only"],
        "removed_by_eval_set": counts_table("evaluation set", s["removed_by_eval_set"]),
        "removed_by_method": counts_table("rule", s["removed_by_method"]),
        "removed_by_source": counts_table("source", s["removed_by_source"]),
        "summary": MetadataValue.json(s),
    }


@asset(
    group_name=GROUP,
    kinds={"duckdb", "parquet"},
    owners=[OWNER],
    description="The prompts of every evaluation set the profile declares (decontamination.eval_sets: "
    "registry sources; eval_files: files of prompts), distinct per set. Every recipe removes the "
    "training rows that come too close to one of them before it writes its files.",
)
def eval_prompts(context: AssetExecutionContext, settings: BuildConfig) -> pa.Table:
    decont = settings.active().decontamination
    try:
        parts = list(eval_prompt_tables(decont, settings.source))
    except (EvalSetError, SourceError, RegistryError) as exc:
        raise Failure(description=str(exc)) from exc
    table = pa.concat_tables(parts) if parts else EVAL_PROMPTS_SCHEMA.empty_table()
    by_set = {p.column("eval_set")[0].as_py(): p.num_rows for p in parts if p.num_rows}
    if not decont.names:
        context.log.info(f"profile '{settings.profile}' declares no evaluation sets")
    context.add_output_metadata(
        {
            "rows": table.num_rows,
            "eval_sets": counts_table("evaluation set", by_set),
            "rules": MetadataValue.json(decont.as_dict),
        }
    )
    return table
