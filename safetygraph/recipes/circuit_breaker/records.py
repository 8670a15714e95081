"""Stage-2 rows as the files carry them: one JSON text per row in the transformers chat
convention (``schemas/stage2_row.schema.json``), with the plan's priority class. The files, the
preflight and its gate all read rows through here."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.recipes.circuit_breaker.shards import USES_TOOLS

# The plan's priority classes. Its merge check 4 requires tool schemas on every row whose
# ``labels.priority_class`` is not "general_conversation": a row without schemas is general
# conversation whatever its kind; a tool row's class ranks its kind (the adversarial-safe answers
# and resisted attacks are the retain set's critical part, real attack successes the harmful set's;
# agent traces, borderline and refused-harmful rows come next; the rest is standard).
GENERAL = "general_conversation"
PRIORITY_CLASS = {
    "attack_success": "critical",
    "adversarial_safe": "critical",
    "attack_resisted": "critical",
    "harmful_completion": "high",
    "attempted_compliance": "high",
    "agent_trace": "high",
    "borderline_compliance": "high",
    "harmful_refusal": "high",
    "general_chat": "standard",
    "benign_answer": "standard",
}
HAS_TOOLS = "coalesce(tools NOT IN ('', '[]', 'null'), false)"
PRIORITY_SQL = (
    f"CASE WHEN NOT {HAS_TOOLS} THEN '{GENERAL}' ELSE CASE cb_kind "
    + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in PRIORITY_CLASS.items())
    + " ELSE 'standard' END END"
)


def _call_id(call_id: str) -> str:
    """A tool-call id every reference accepts (Mistral's: 9 characters of [a-zA-Z0-9]), derived
    from the row id and the source's id, so a call and its result keep matching ids."""
    return f"left(md5(id || '|' || coalesce({call_id}, '')), 9)"


def records_sql(table_name: str, split: bool = False, where: str = "", order_by: str = "id") -> str:
    """One JSON text per stage-2 row, in the transformers chat convention (``schemas/stage2_row.schema.json``):
    no null keys; ``tool_calls`` only on assistant turns that call tools, each
    ``{id, type: function, function: {name, arguments}}`` with ``arguments`` a JSON object (text
    that is not JSON stays a string, for the validation and the preflight to reject by row); tool
    results as ``role: tool`` with ``tool_call_id`` and ``name``; ``tools`` only where the row has
    schemas. (A JSON merge patch drops the keys whose value is null.)"""
    message = f"""json_merge_patch(
        json_object('role', m.role, 'content', coalesce(m.content, '')),
        json_object(
          'tool_calls', CASE WHEN m.role = 'assistant' AND coalesce(json_array_length(m.tool_calls), 0) > 0 THEN
            to_json(list_transform(json_extract(m.tool_calls, '$[*]'), lambda c: json_object(
              'id', {_call_id("json_extract_string(c, '$.id')")}, 'type', 'function',
              'function', json_object('name', json_extract_string(c, '$.name'),
                                      'arguments', CASE WHEN json_valid(coalesce(nullif(json_extract_string(c, '$.arguments'), ''), '{{}}')) THEN json(coalesce(nullif(json_extract_string(c, '$.arguments'), ''), '{{}}')) ELSE to_json(json_extract_string(c, '$.arguments')) END))))
            END,
          'tool_call_id', CASE WHEN m.role = 'tool' AND m.tool_call_id IS NOT NULL THEN {_call_id("m.tool_call_id")} END,
          -- a tool result without a name takes the name of the call it answers
          'name', CASE WHEN m.role = 'tool' THEN coalesce(m.name, json_extract_string(
            list_filter(__calls, lambda c: json_extract_string(c, '$.id') = m.tool_call_id)[1], '$.name')) END))"""
    return f"""
    SELECT json_merge_patch(
      json_object(
        'id', id, 'source', source, 'cb_class', cb_class, 'cb_kind', cb_kind,
        'is_adversarial_safe', is_adversarial_safe,
        'messages', to_json(list_transform(messages, lambda m: {message})),
        'labels', json_object('outcome', label_outcome, 'prompt_harmful', prompt_harmful,
                              'response_harmful', response_harmful, 'response_refusal', response_refusal,
                              'response_attempted', response_attempted,
                              'confidence', label_confidence, 'judge', judge,
                              -- what the plan's merge check reads: its class, its priority, tool use
                              'cb_class', cb_class, 'cb_kind', cb_kind,
                              'is_adversarial_safe', is_adversarial_safe,
                              'priority_class', {PRIORITY_SQL},
                              'uses_tools', {USES_TOOLS},
                              'has_tools', {HAS_TOOLS})),
      json_object('category', category, 'tools', CASE WHEN tools IS NULL THEN NULL ELSE json(tools) END
                  {", 'split', split" if split else ""}))::VARCHAR AS line
    FROM (SELECT *, flatten(list_transform(messages,
            lambda x: coalesce(json_extract(x.tool_calls, '$[*]'), []::JSON[]))) AS __calls
          FROM {table_name} {where})
    ORDER BY {order_by}
    """


def jsonl_bytes(
    con, table_name: str, split: bool = False, where: str = "", order_by: str = "id"
) -> bytes:
    """The stage-2 JSONL file of ``table_name`` (registered on ``con``), as written."""
    rows = duck.rows(con, records_sql(table_name, split, where, order_by))
    return "".join(r[0] + "\n" for r in rows).encode("utf-8")


def stage2_rows(table: pa.Table) -> list[dict[str, Any]]:
    """``table``'s rows exactly as the stage-2 files carry them (the same bytes, parsed back), in
    the table's order."""
    con = duck.connect(t=table.append_column("__pos", pa.array(range(table.num_rows), pa.int64())))
    lines = jsonl_bytes(con, "t", order_by="__pos").decode("utf-8").splitlines()
    return [json.loads(line) for line in lines]
