"""The medical DPO seed's own files beside TRL's (``../shared/seeds/S3-medical-dpo-pairs.md``):
``stage2_med_prompts.jsonl`` (one line per question: ``id, source, question_type, category,
question``) and ``stage2_med_pairs.jsonl`` (one line per pair: those fields, then ``prompt`` (the
training system prompt and the question), ``chosen``, ``rejected`` and
``meta{teacher_model, mmt_ckpt}``), train and eval together with a ``split`` field.

Ids are the seed's: ``<source>_<n>`` with ``n`` the question's row in its upstream file, six digits
(``medquad_000123``); a second pair of one question gets ``_2`` and so on. ``source`` is the
upstream dataset (``lavita/MedQuAD``) where the registry knows it; ``category`` is the question
type normalized to ``lower_snake_case`` (``genetic_changes``), else the source's category, else
``other``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from safetygraph.core.duck import sql_literal

PROMPTS_FILE = "stage2_med_prompts.jsonl"
PAIRS_FILE = "stage2_med_pairs.jsonl"


def _upstream(upstream: Mapping[str, str]) -> str:
    cases = " ".join(
        f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in sorted(upstream.items())
    )
    return f"CASE source {cases} ELSE source END" if cases else "source"


def numbered_sql(system_prompt: str | None, upstream: Mapping[str, str]) -> str:
    """SQL over the pairs of ``tr`` and ``ev``: every pair with its seed id and seed fields."""
    system = sql_literal(system_prompt + "\n\n") if system_prompt else "''"
    # the row's place in its upstream file: the last number of source_ref ("file:line", "hf#index")
    ordinal = r"TRY_CAST(regexp_extract(regexp_replace(source_ref, '@.*$', ''), '[:#](\d+)$', 1) AS BIGINT)"
    category = (
        "coalesce(nullif(trim(regexp_replace(lower(coalesce(question_type, category, '')), "
        "'[^a-z0-9]+', '_', 'g'), '_'), ''), 'other')"
    )
    return f"""
    WITH p AS (
      SELECT *, 'train' AS split FROM tr UNION ALL BY NAME SELECT *, 'eval' AS split FROM ev
    ), n AS (
      SELECT *, coalesce({ordinal}, dense_rank() OVER (PARTITION BY source ORDER BY source_ref)) AS __n
      FROM p
    ), k AS (
      SELECT *, row_number() OVER (PARTITION BY source, __n ORDER BY id) AS __k FROM n
    )
    SELECT source || '_' || CASE WHEN __n < 1000000 THEN lpad(CAST(__n AS VARCHAR), 6, '0')
                                 ELSE CAST(__n AS VARCHAR) END
             || CASE WHEN __k > 1 THEN '_' || CAST(__k AS VARCHAR) ELSE '' END AS id,
           {_upstream(upstream)} AS source,
           question_type,
           {category} AS category,
           prompt AS question,
           {system} || prompt AS prompt,
           chosen_text AS chosen,
           rejected_text AS rejected,
           {{'teacher_model': chosen_model, 'mmt_ckpt': rejected_model}} AS meta,
           split,
           id AS safetygraph_id,
           source AS registry_source,
           __n, __k
    FROM k
    """


def write_seed_files(
    con, folder: str, system_prompt: str | None, upstream: Mapping[str, str]
) -> list[tuple[str, str, int | None]]:
    """Both seed files in the local ``folder`` from the pairs registered on ``con`` as ``tr`` and
    ``ev``: ``(file name, local path, rows)`` for ``core.builds.publish``."""
    con.execute(f"CREATE TEMP TABLE seed_pairs AS {numbered_sql(system_prompt, upstream)}")
    out = []
    queries = {
        PAIRS_FILE: "SELECT * EXCLUDE (__n, __k) FROM seed_pairs ORDER BY registry_source, __n, __k",
        PROMPTS_FILE: "SELECT id, source, question_type, category, question FROM seed_pairs "
        "WHERE __k = 1 ORDER BY registry_source, __n",
    }
    for name, sql in queries.items():
        local = os.path.join(folder, name)
        con.execute(f"COPY ({sql}) TO '{local}' (FORMAT json)")
        rows = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
        out.append((name, local, int(rows)))
    return out
