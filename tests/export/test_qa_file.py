"""`safetygraph qa` on the seed's JSON-array layout (S2's final_dataset.json) as on JSON lines."""

import json

from safetygraph.export.qa_file import qa_file


def _rows(n: int) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "prompt": f"question number {i}",
            "source": "ab"[i % 2],
            "outcome": "COMPLY.BENIGN",
        }
        for i in range(n)
    ]


def _metric(report: dict, group: str) -> dict:
    return next(m for m in report["metrics"] if m["group"] == group)


def test_a_json_array_is_read_element_by_element(tmp_path):
    path = tmp_path / "final_dataset.json"
    path.write_text(json.dumps(_rows(6), indent=2))
    report = qa_file(str(path))
    assert report["layout"] == "json-array" and report["rows"] == 6
    fmt = _metric(report, "format")
    assert fmt["value"] == 0 and fmt["passed"] and "array elements" in fmt["metric"]


def test_an_array_element_that_is_not_an_object_is_named_by_position(tmp_path):
    path = tmp_path / "final_dataset.json"
    path.write_text(json.dumps([*_rows(3), 7, "text"]))
    report = qa_file(str(path))
    assert report["rows"] == 3
    assert report["unreadable_lines"] == [4, 5]
    assert not _metric(report, "format")["passed"]


def test_json_lines_are_unchanged(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _rows(4)) + "\nnot json\n")
    report = qa_file(str(path))
    assert report["layout"] == "jsonl" and report["rows"] == 4
    assert report["unreadable_lines"] == [5]
