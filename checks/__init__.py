"""Asset checks, one module per domain (sources, generation, labeling, audit, datasets,
circuit_breaker, export); the factories for the patterns that repeat are in ``factories.py``.

Those that guard training data are blocking (severity ERROR): a failure skips every downstream asset
in the run and fails the run, which the alert sensors report."""

import warnings

from dagster import AssetCheckKey, PartitionsDefinition, PreviewWarning
from safetygraph.location.checks import (
    audit,
    circuit_breaker,
    datasets,
    export,
    generation,
    labeling,
    preference,
    sources,
)

warnings.filterwarnings(
    "ignore", category=PreviewWarning
)  # partitioned asset checks are preview in 1.13


def per_source_checks(partitions: PartitionsDefinition) -> list:
    """The checks on the partitioned per-source chain (each partitioned like its asset); the
    preference recipe's per-source checks are ``preference.per_source``."""
    return [
        *sources.per_source(partitions),
        *generation.per_source(partitions),
        *labeling.per_source(partitions),
        *audit.per_source(partitions),
    ]


def dataset_checks() -> list:
    """The checks on the merged, unpartitioned assets."""
    return [
        *labeling.dataset(),
        *datasets.dataset(),
        *circuit_breaker.dataset(),
        *export.dataset(),
        *preference.dataset(),
    ]


def blocking_check_keys(checks: list, assets: tuple) -> dict:
    """{asset key: [blocking check keys]} for the given assets, read off the check definitions."""
    out: dict = {key: [] for key in assets}
    for c in checks:
        for spec in c.check_specs:
            if spec.blocking and spec.asset_key in out:
                out[spec.asset_key].append(AssetCheckKey(spec.asset_key, spec.name))
    return out
