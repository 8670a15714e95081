"""The ``tau2_trace`` builder: a tau2-bench task (``tasks.json``) as a chat trace with tool calls."""

from __future__ import annotations

from typing import Any

from safetygraph.core.records import canonical_json
from safetygraph.sources.errors import RowError, RowSkipped
from safetygraph.sources.rows import get_path, to_message

TAU2_SYSTEM = (
    "You are a customer service agent. Help the user with their request, following the policy of "
    "your domain and using the tools available to you."
)
TAU2_TOOL_RESULT = canonical_json({"note": "tool output not recorded in tau2 tasks.json"})


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _request_text(row: dict[str, Any]) -> str:
    """The customer's request (reason for call and known info), or a RowError when it is empty."""
    instructions = get_path(row, "user_scenario.instructions")
    if isinstance(instructions, dict):
        parts = [instructions.get("reason_for_call"), instructions.get("known_info")]
        request = "\n\n".join(str(x).strip() for x in parts if x)
    elif isinstance(instructions, str):
        request = instructions.strip()
    else:
        request = ""
    if not request:
        raise RowError(
            "missing mapped field: tau2 task has no user_scenario.instructions (reason_for_call)"
        )
    return request


def _agent_actions(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The task's expected agent actions, or a RowSkipped when it has none."""
    criteria = row.get("evaluation_criteria") or {}
    actions = [
        a
        for a in (criteria.get("actions") or [])
        if isinstance(a, dict) and a.get("name") and a.get("requestor", "assistant") != "user"
    ]
    if not actions:
        raise RowSkipped(
            "tau2 task has no expected agent actions (evaluation_criteria.actions): no trace to "
            f"build without a model (task {row.get('id', '?')})"
        )
    return actions


def _tool_result(call_id: str, name: str, index: int) -> dict[str, Any]:
    """The tool turn answering call ``call_id``, saying that tasks.json records no output."""
    return to_message(
        {
            "role": "tool",
            "content": TAU2_TOOL_RESULT,
            "tool_call_id": call_id,
            "name": name,
        },
        index,
        "tau2",
    )


def _tool_call(call_id: str, name: str, args: dict[str, Any], index: int) -> dict[str, Any]:
    """The assistant turn that calls tool ``name`` with ``args``."""
    return to_message(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "function": {"name": name, "arguments": args}}],
        },
        index,
        "tau2",
    )


def _add_schema(
    schemas: dict[str, dict[str, Any]], action: dict[str, Any], args: dict[str, Any]
) -> None:
    """None: adds the action's tool to ``schemas``, its parameters inferred from ``args``."""
    fn = schemas.setdefault(
        action["name"],
        {
            "name": action["name"],
            "description": action.get("info")
            or f"{action['name']} (schema inferred from the task's recorded arguments)",
            "parameters": {"type": "object", "properties": {}, "required": []},
        },
    )
    for key, value in args.items():
        fn["parameters"]["properties"].setdefault(key, {"type": _json_type(value)})
        if key not in fn["parameters"]["required"]:
            fn["parameters"]["required"].append(key)


def tau2_trace(row: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A tau2-bench task as a chat trace: the customer's request, then the agent's expected actions
    (evaluation_criteria.actions, requestor other than the user) as one tool call per assistant turn.
    tasks.json records no tool outputs: the turns between calls say so instead of inventing them,
    and the trace ends with the last call. Tool schemas are inferred from the recorded arguments.
    A task without agent actions has no trace to build without a model: it is skipped
    (``RowSkipped``, kept in the quarantine table with the reason, never blocking the source)."""
    request = _request_text(row)
    actions = _agent_actions(row)
    messages = [
        to_message({"role": "system", "content": TAU2_SYSTEM}, 0, "tau2"),
        to_message({"role": "user", "content": request}, 1, "tau2"),
    ]
    schemas: dict[str, dict[str, Any]] = {}
    for k, action in enumerate(actions):
        args = action.get("arguments") or {}
        if not isinstance(args, dict):
            raise RowError(f"wrong type: tau2 action {k} arguments are not an object")
        call_ids = [f"call_{a.get('action_id', i)}" for i, a in enumerate(actions)]
        call_id = call_ids[k]
        if k:
            messages.append(_tool_result(call_ids[k - 1], actions[k - 1]["name"], len(messages)))
        messages.append(_tool_call(call_id, action["name"], args, len(messages)))
        _add_schema(schemas, action, args)
    tools = (
        canonical_json([{"type": "function", "function": f} for f in schemas.values()])
        if schemas
        else None
    )
    return messages, tools
