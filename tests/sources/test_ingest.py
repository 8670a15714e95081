"""Source adapters on fixtures the tests write: every format and kind, quarantine, clear errors."""

import gzip
import http.server
import json
import threading
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from safetygraph.sources.errors import SourceError
from safetygraph.sources.ingest import ingest
from safetygraph.sources.registry import load_registry
from tests.conftest import write_registry


def _spec(tmp_path: Path, **entry):
    entry = {"name": "src", "kind": "local", "roles": ["benign"], **entry}
    reg, prof = write_registry(tmp_path / "cfg", [entry])
    return load_registry(reg, prof).source("src")


def _rows(result):
    return result.table.to_pylist()


def test_jsonl_with_custom_column_names(tmp_path: Path):
    f = tmp_path / "mine.jsonl"
    f.write_text(
        json.dumps(
            {
                "q": "How do I bake bread?",
                "a": "Mix flour, water, salt and yeast.",
                "topic": "cooking",
                "extra": 1,
            }
        )
        + "\n"
        + "\n"
        + json.dumps({"q": "What is 2+2?", "a": None, "topic": "math"})
        + "\n"
    )
    result = ingest(
        _spec(
            tmp_path,
            location={"path": str(f)},
            format="jsonl",
            mapping={"prompt": "q", "response": "a", "category": "topic"},
        )
    )
    rows = _rows(result)
    assert [r["prompt"] for r in rows] == ["How do I bake bread?", "What is 2+2?"]
    assert rows[0]["response"] == "Mix flour, water, salt and yeast."
    assert rows[1]["response"] is None
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"]
    assert rows[0]["source_ref"].endswith("mine.jsonl:1") and rows[1]["source_ref"].endswith(
        "mine.jsonl:3"
    )
    assert rows[0]["category"] == "cooking" and rows[0]["tags"] == ["benign"]
    assert json.loads(rows[0]["meta"]) == {"extra": 1}
    assert result.quarantine.num_rows == 0


def test_bad_lines_go_to_quarantine_with_line_numbers_and_good_rows_arrive(tmp_path: Path):
    f = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"prompt": "good one"}).encode(),
        b'{"prompt": "truncated',  # truncated JSON line
        json.dumps({"other": "no prompt here"}).encode(),  # row without its prompt
        b'{"prompt": "caf\xe9 latin-1"}',  # not UTF-8
        json.dumps({"prompt": {"nested": "object"}}).encode(),  # wrong type
        json.dumps(["not", "an", "object"]).encode(),
        json.dumps({"prompt": "good two"}).encode(),
    ]
    f.write_bytes(b"\n".join(lines) + b"\n")
    result = ingest(
        _spec(tmp_path, location={"path": str(f)}, format="jsonl", mapping={"prompt": "prompt"})
    )
    assert [r["prompt"] for r in _rows(result)] == ["good one", "good two"]
    q = {r["line"]: r for r in result.quarantine.to_pylist()}
    assert set(q) == {2, 3, 4, 5, 6}
    assert q[2]["reason"].startswith("malformed JSON") and q[2]["raw"] == '{"prompt": "truncated'
    assert q[3]["reason"].startswith("missing mapped field: 'prompt'")
    assert q[4]["reason"].startswith("not valid UTF-8") and "\\xe9" in q[4]["raw"]
    assert q[5]["reason"].startswith("wrong type: 'prompt'")
    assert q[6]["reason"].startswith("malformed JSON: expected an object")
    assert all(r["source"] == "src" and r["file"].endswith("bad.jsonl") for r in q.values())
    assert result.stats.rows_read == 7 and result.stats.rows_quarantined == 5


def test_csv_quarantines_wrong_field_counts_and_bad_bytes(tmp_path: Path):
    f = tmp_path / "p.csv"
    f.write_bytes(
        b'question,area\n"How, with a comma?",x\nonly_one_field\n"multi\nline question",y\nbad \xff byte,z\nfine,w\n'
    )
    result = ingest(
        _spec(
            tmp_path,
            location={"path": str(f)},
            format="csv",
            mapping={"prompt": "question", "category": "area"},
        )
    )
    assert [r["prompt"] for r in _rows(result)] == [
        "How, with a comma?",
        "multi\nline question",
        "fine",
    ]
    assert [r["source_ref"].rsplit(":", 1)[1] for r in _rows(result)] == ["2", "4", "7"]
    q = {r["line"]: r["reason"] for r in result.quarantine.to_pylist()}
    assert q[3].startswith("wrong field count") and q[6].startswith("not valid UTF-8")


def test_json_array_gzip_and_object_with_records_key(tmp_path: Path):
    arr = tmp_path / "a.json.gz"
    with gzip.open(arr, "wt") as fh:
        json.dump([{"instruction": "one"}, {"instruction": "two"}, "junk"], fh)
    result = ingest(
        _spec(
            tmp_path,
            location={"path": str(arr)},
            format="json.gz",
            mapping={"prompt": "instruction"},
        )
    )
    assert [r["prompt"] for r in _rows(result)] == ["one", "two"]
    assert result.quarantine.to_pylist()[0]["line"] == 3

    obj = tmp_path / "o.json"
    obj.write_text(json.dumps({"meta": {}, "items": [{"task": {"text": "nested"}}]}))
    spec = _spec(
        tmp_path,
        location={"path": str(obj), "records_key": "items"},
        format="json",
        mapping={"prompt": "task.text"},
    )
    assert [r["prompt"] for r in _rows(ingest(spec))] == ["nested"]


def test_broken_json_document_names_line_and_column(tmp_path: Path):
    f = tmp_path / "broken.json"
    f.write_text('[\n {"p": "a"},\n {"p": \n')
    with pytest.raises(SourceError, match=r"source 'src': .*broken.json line 4 column 1"):
        ingest(_spec(tmp_path, location={"path": str(f)}, format="json", mapping={"prompt": "p"}))


def test_jsonl_gz_transcripts_messages_and_tools(tmp_path: Path):
    f = tmp_path / "t.jsonl.gz"
    with gzip.open(f, "wt") as fh:
        fh.write(
            json.dumps(
                {
                    "chosen": "\n\nHuman: hi there\n\nAssistant: hello!\n\nHuman: how are you?\n\nAssistant: fine, thanks."
                }
            )
            + "\n"
        )
    result = ingest(
        _spec(
            tmp_path, location={"path": str(f)}, format="jsonl.gz", mapping={"transcript": "chosen"}
        )
    )
    row = _rows(result)[0]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant", "user", "assistant"]
    assert row["prompt"] == "how are you?" and row["response"] == "fine, thanks."

    g = tmp_path / "agent.jsonl"
    conv = [
        {"role": "user", "content": "cancel R1"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "cancel", "arguments": {"id": "R1"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "assistant", "content": "Done."},
    ]
    tools = [{"type": "function", "function": {"name": "cancel"}}]
    g.write_text(
        json.dumps({"conv": conv, "tools": tools})
        + "\n"
        + json.dumps({"conv": [{"role": "robot", "content": "x"}]})
        + "\n"
    )
    result = ingest(
        _spec(
            tmp_path,
            location={"path": str(g)},
            format="jsonl",
            mapping={"messages": "conv", "tools": "tools"},
        )
    )
    row = _rows(result)[0]
    assert json.loads(row["messages"][1]["tool_calls"]) == [
        {"arguments": '{"id":"R1"}', "id": "c1", "name": "cancel"}
    ]
    assert json.loads(row["tools"]) == tools and row["response"] == "Done."
    assert "role 'robot'" in result.quarantine.to_pylist()[0]["reason"]


def test_parquet_and_row_limit_sample_is_deterministic(tmp_path: Path):
    f = tmp_path / "d.parquet"
    pq.write_table(pa.table({"p": [f"prompt {i}" for i in range(50)]}), f)
    spec = _spec(
        tmp_path,
        location={"path": str(f)},
        format="parquet",
        mapping={"prompt": "p"},
        row_limit=10,
        seed=3,
    )
    a, b = ingest(spec), ingest(spec)
    assert (
        a.table.num_rows == 10
        and a.table.column("id").to_pylist() == b.table.column("id").to_pylist()
    )
    other = ingest(
        _spec(
            tmp_path,
            location={"path": str(f)},
            format="parquet",
            mapping={"prompt": "p"},
            row_limit=10,
            seed=4,
        )
    )
    assert set(other.table.column("id").to_pylist()) != set(a.table.column("id").to_pylist())
    assert a.stats.rows_ok == 50 and a.stats.rows_kept == 10 and a.stats.rows_sampled_out == 40


def test_ids_are_stable_and_duplicates_get_distinct_ids(tmp_path: Path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({"p": t}) for t in ["same", "same", "other"]) + "\n")
    spec = _spec(tmp_path, location={"path": str(f)}, format="jsonl", mapping={"prompt": "p"})
    ids = ingest(spec).table.column("id").to_pylist()
    assert len(set(ids)) == 3 and ids == ingest(spec).table.column("id").to_pylist()


def test_ingest_streams_bounded_batches_with_the_same_ids(tmp_path: Path, monkeypatch):
    """The stream yields at most batch_rows rows at a time while the file is read, and the rows
    and ids (occurrence numbers of identical rows counted across batches) are those of a whole read."""
    from safetygraph.sources import readers
    from safetygraph.sources.ingest import Ingest

    f = tmp_path / "d.jsonl"
    texts = ["same", "a", "same", "b", "c", "same", "d"]
    f.write_text("\n".join(json.dumps({"p": t}) for t in texts) + "\n{broken\n")
    spec = _spec(tmp_path, location={"path": str(f)}, format="jsonl", mapping={"prompt": "p"})
    whole = ingest(spec)
    monkeypatch.setattr(readers, "BLOCK_ROWS", 2)
    run = Ingest(spec, batch_rows=2)
    batches = list(run.batches())
    assert [b.num_rows for b in batches] == [2, 2, 2, 1]
    streamed = pa.concat_tables(batches)
    assert streamed.equals(whole.table) and len(set(streamed.column("id").to_pylist())) == 7
    assert run.stats == whole.stats and run.stats.rows_quarantined == 1
    assert run.quarantine().column("line").to_pylist() == [8]


def test_unpivot_one_record_per_model_response(tmp_path: Path):
    f = tmp_path / "dna.csv"
    f.write_text("question,A_response,A_action,B_response,B_action\nq1,ra,0,rb,5\nq2,,,rb2,4\n")
    spec = _spec(
        tmp_path,
        location={"path": str(f)},
        format="csv",
        mapping={"prompt": "question"},
        responses={"A": "A_response", "B": "B_response"},
        response_meta={"gold_action": "{model}_action"},
    )
    rows = _rows(ingest(spec))
    assert [(r["prompt"], r["response"]) for r in rows] == [
        ("q1", "ra"),
        ("q1", "rb"),
        ("q2", "rb2"),
    ]
    assert json.loads(rows[1]["meta"]) == {"gold_action": "5", "response_model": "B"}


def test_missing_file_unknown_column_and_empty_glob_fail_with_the_fix(tmp_path: Path):
    with pytest.raises(
        SourceError,
        match=r"source 'src': .*nope\.jsonl (?:does not exist|no file matches); fix location.path",
    ):
        ingest(
            _spec(
                tmp_path,
                location={"path": str(tmp_path / "nope.jsonl")},
                format="jsonl",
                mapping={"prompt": "p"},
            )
        )
    f = tmp_path / "c.csv"
    f.write_text("question\nhello\n")
    with pytest.raises(
        SourceError,
        match=r"source 'src': .*c\.csv has no column\(s\) \['prompt'\].*fix the mapping",
    ):
        ingest(
            _spec(tmp_path, location={"path": str(f)}, format="csv", mapping={"prompt": "prompt"})
        )
    j = tmp_path / "j.jsonl"
    j.write_text(json.dumps({"question": "hi"}) + "\n")
    with pytest.raises(
        SourceError, match=r"no row of .*j\.jsonl has the mapped column\(s\) \['prompt'\]"
    ):
        ingest(
            _spec(tmp_path, location={"path": str(j)}, format="jsonl", mapping={"prompt": "prompt"})
        )


def test_hf_kind_goes_through_datasets_load_dataset(tmp_path: Path):
    data = tmp_path / "hfdata"
    data.mkdir()
    (data / "train.jsonl").write_text(
        "\n".join(json.dumps({"goal": f"goal {i}", "cat": "c"}) for i in range(5)) + "\n"
    )
    spec = _spec(
        tmp_path,
        kind="hf",
        location={"id": str(data), "split": "train"},
        mapping={"prompt": "goal", "category": "cat"},
    )
    result = ingest(spec)
    assert result.table.num_rows == 5
    assert result.table.column("source_ref")[0].as_py().startswith(f"hf:{data}[train]#0")
    bad = _spec(
        tmp_path,
        kind="hf",
        location={"id": str(data), "split": "train"},
        mapping={"prompt": "missing"},
    )
    with pytest.raises(SourceError, match=r"has no column\(s\) \['missing'\]"):
        ingest(bad)


def test_url_kind_reads_over_http(tmp_path: Path):
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "x.csv").write_text("prompt\nfrom the web\n")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "srv"))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/x.csv"
        result = ingest(
            _spec(
                tmp_path,
                kind="url",
                location={"url": url},
                format="csv",
                mapping={"prompt": "prompt"},
            )
        )
        assert _rows(result)[0]["prompt"] == "from the web"
        assert _rows(result)[0]["source_ref"] == f"{url}:2"
    finally:
        server.shutdown()
