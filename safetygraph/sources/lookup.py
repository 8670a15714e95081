"""A source's lookup: a value of the row found in a second file by a column of the row (GPTFuzz
keeps each answer's question index, the question's text in another file). Declared in the registry
as ``lookup: {column, path, key, value, as}``; the looked-up value becomes the row's column ``as``,
which the mapping can name. Also the check of an entry's ``stage2_files``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetygraph.core import duck
from safetygraph.core.paths import resolve_registry_path
from safetygraph.sources.errors import RegistryError, SourceError

if TYPE_CHECKING:
    from safetygraph.sources.registry import SourceSpec

LOOKUP_KEYS = ("column", "path", "key", "value", "as")


def resolve(path: str, base_dir: Path) -> str:
    """``path`` as is when absolute or a URL, else against ``base_dir`` (the registry's folder)."""
    return resolve_registry_path(path, base_dir)


def parse_lookup(body: Any, where: str) -> dict[str, str]:
    """The registry entry's ``lookup`` checked: exactly the five keys, each given."""
    lookup = dict(body or {})
    if not lookup:
        return {}
    missing = [k for k in LOOKUP_KEYS if not lookup.get(k)]
    extra = sorted(set(lookup) - set(LOOKUP_KEYS))
    if missing or extra:
        raise RegistryError(
            f"{where}: lookup needs exactly {', '.join(LOOKUP_KEYS)} "
            f"(missing {missing or 'none'}, unknown {extra or 'none'})"
        )
    return {k: str(v) for k, v in lookup.items()}


FILE_STEM = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def parse_stage2_files(body: Any, where: str) -> dict[str, str]:
    """The entry's ``stage2_files`` checked: keys harmful and/or retain, each a file stem."""
    files = dict(body or {})
    unknown = sorted(set(files) - {"harmful", "retain"})
    if unknown:
        raise RegistryError(
            f"{where}: stage2_files keys {unknown} are unknown; use harmful and retain"
        )
    bad = [v for v in files.values() if not FILE_STEM.match(str(v))]
    if bad:
        raise RegistryError(
            f"{where}: stage2_files names {bad} must be file stems (lower-case letters, digits, "
            "underscores; no .jsonl)"
        )
    return {k: str(v) for k, v in files.items()}


def load_lookup(spec: SourceSpec) -> dict[str, str]:
    """The lookup file of ``spec`` as {key: value} (CSV, JSON or JSON Lines, read by DuckDB)."""
    lk = spec.lookup
    path = spec.lookup_path()
    if "://" not in path and not os.path.exists(path):
        raise SourceError(
            f"source '{spec.name}': lookup file {path} does not exist; fix lookup.path in the registry"
        )
    reader = (
        f"read_csv({duck.sql_literal(path)}, header=true, all_varchar=true)"
        if path.endswith((".csv", ".csv.gz"))
        else f"read_json_auto({duck.sql_literal(path)})"
    )
    con = duck.connect()
    try:
        rows = duck.rows(
            con,
            f'SELECT "{lk["key"]}"::VARCHAR, "{lk["value"]}"::VARCHAR FROM {reader}',
        )
    except Exception as exc:  # a missing column or an unreadable file: say which
        raise SourceError(
            f"source '{spec.name}': lookup file {path} has no columns '{lk['key']}' and "
            f"'{lk['value']}' or cannot be read ({exc}); fix lookup in the registry"
        ) from exc
    finally:
        con.close()
    return {k: v for k, v in rows if k is not None and v is not None}
