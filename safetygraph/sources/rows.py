"""Row-level primitives of the mapping: reading a (dotted) path from a parsed row, text fields,
chat messages and tool calls in canonical form. Each raises :class:`RowError` with the reason a row
is quarantined."""

from __future__ import annotations

from typing import Any

from safetygraph.core.records import canonical_json
from safetygraph.sources.errors import RowError

MISSING = object()
ROLE_ALIASES = {
    "human": "user",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "function": "tool",
}


def get_path(row: dict[str, Any], path: str) -> Any:
    if path in row:
        return row[path]
    cur: Any = row
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return MISSING
    return cur


def text_field(
    value: Any, fld: str, column: str, required: bool, coerce: tuple[str, ...] = ()
) -> str | None:
    """A text field's value. Text must be a string: a number or a boolean is quarantined as a wrong
    type (a shifted column looks exactly like that), unless the source lists the field under
    ``coerce`` in the registry, where numbers become their text."""
    if value is MISSING or value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RowError(f"missing mapped field: '{fld}' (column '{column}') is empty or absent")
        return None
    if isinstance(value, str):
        return value
    if fld in coerce and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RowError(
        f"wrong type: '{fld}' (column '{column}') is {type(value).__name__} ({str(value)[:40]}), "
        f"expected text; fix the mapping, or list '{fld}' under coerce: for this source"
    )


def to_message(m: Any, i: int, column: str) -> dict[str, Any]:
    if not isinstance(m, dict):
        raise RowError(
            f"malformed messages: item {i} of column '{column}' is {type(m).__name__}, expected an object"
        )
    role = m.get("role", m.get("from"))
    role = ROLE_ALIASES.get(role, role)
    if role not in ("system", "user", "assistant", "tool"):
        raise RowError(f"malformed messages: item {i} of column '{column}' has role {role!r}")
    content = m.get("content", m.get("value"))
    if content is not None and not isinstance(content, str):
        content = canonical_json(content)
    tool_calls = m.get("tool_calls")
    if tool_calls:
        tool_calls = canonical_json([to_tool_call(tc, i, column) for tc in tool_calls])
    else:
        tool_calls = None
    if content is None and tool_calls is None:
        raise RowError(
            f"malformed messages: item {i} of column '{column}' has neither content nor tool_calls"
        )
    return {
        "role": role,
        "content": content,
        "tool_calls": tool_calls,
        "tool_call_id": m.get("tool_call_id"),
        "name": m.get("name"),
    }


def to_tool_call(tc: Any, i: int, column: str) -> dict[str, Any]:
    if not isinstance(tc, dict):
        raise RowError(
            f"malformed messages: a tool call of item {i} in '{column}' is not an object"
        )
    fn = tc.get("function", tc)
    if isinstance(fn, str):  # AgentDojo style: {"function": "name", "args": {...}}
        fn = {"name": fn, "arguments": tc.get("args", {})}
    args = fn.get("arguments", fn.get("args", {}))
    if not isinstance(args, str):
        args = canonical_json(args)
    return {"id": tc.get("id"), "name": fn.get("name"), "arguments": args}


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
