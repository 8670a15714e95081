"""Nothing lost, nothing silent: a corpus of malformed files, each 200 good rows plus one defect of a
kind. For each kind the test asserts the exact number of good rows that arrive and the quarantined
line numbers, or the one error that names the source, the file and the fix."""

import gzip
import json
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from safetygraph.sources.errors import SourceError
from safetygraph.sources.ingest import ingest
from safetygraph.sources.registry import load_registry
from tests.conftest import write_registry

GOOD = 200


def _spec(tmp_path: Path, path: Path | str, fmt: str, mapping=None, **extra):
    entry = {
        "name": "src",
        "kind": "local",
        "location": {"path": str(path)},
        "format": fmt,
        "mapping": mapping or {"prompt": "prompt", "response": "response"},
        "roles": ["benign"],
        **extra,
    }
    reg, prof = write_registry(tmp_path / "cfg", [entry])
    return load_registry(reg, prof).source("src")


def good_rows(n: int = GOOD, start: int = 0) -> list[dict]:
    return [
        {"prompt": f"question {i}?", "response": f"answer {i}."} for i in range(start, start + n)
    ]


def jsonl_lines(rows: list[dict]) -> list[str]:
    return [json.dumps(r) for r in rows]


def with_defect(lines: list[str], defect: str, at: int = 101) -> list[str]:
    """``defect`` inserted so that it is physical line ``at`` (1-based)."""
    return lines[: at - 1] + [defect] + lines[at - 1 :]


def csv_lines(rows: list[dict]) -> list[str]:
    return ["prompt,response"] + [f"{r['prompt']},{r['response']}" for r in rows]


def result_of(spec):
    r = ingest(spec)
    return r.table.num_rows, r.quarantine.column("line").to_pylist(), r.quarantine


def assert_prompts_complete(spec, expected: int):
    table = ingest(spec).table
    prompts = set(table.column("prompt").to_pylist())
    assert {f"question {i}?" for i in range(expected)} <= prompts


# ---------------------------------------------------------------- kinds that quarantine one line


@pytest.mark.parametrize(
    "kind, defect, reason",
    [
        ("truncated JSON line", '{"prompt": "cut off', "malformed JSON"),
        ("a number where the prompt should be", '{"prompt": 12345, "response": "x"}', "wrong type"),
        ("a list where the prompt should be", '{"prompt": ["a"], "response": "x"}', "wrong type"),
        (
            "a boolean where the response should be",
            '{"prompt": "p?", "response": true}',
            "wrong type",
        ),
        ("missing mapped field", '{"response": "no prompt here"}', "missing mapped field"),
        ("not an object", "[1, 2, 3]", "malformed JSON: expected an object"),
        ("a 10 MB string", json.dumps({"prompt": "x" * 10_000_000, "response": "y"}), "too long"),
    ],
)
def test_jsonl_defect_is_quarantined_with_its_line(tmp_path, kind, defect, reason):
    f = tmp_path / "data.jsonl"
    f.write_text("\n".join(with_defect(jsonl_lines(good_rows()), defect)) + "\n")
    n, lines, q = result_of(_spec(tmp_path, f, "jsonl"))
    assert n == GOOD, kind
    assert lines == [101], kind
    assert q.column("reason")[0].as_py().startswith(reason), q.column("reason")[0]


def test_non_utf8_bytes_are_quarantined_with_their_line(tmp_path):
    f = tmp_path / "data.jsonl"
    lines = [x.encode() for x in jsonl_lines(good_rows())]
    lines.insert(100, b'{"prompt": "caf\xe9?", "response": "x"}')
    f.write_bytes(b"\n".join(lines) + b"\n")
    n, q_lines, q = result_of(_spec(tmp_path, f, "jsonl"))
    assert (n, q_lines) == (GOOD, [101])
    assert "not valid UTF-8: byte 0xe9" in q.column("reason")[0].as_py()


def test_csv_unterminated_quote_loses_only_its_line(tmp_path):
    f = tmp_path / "data.csv"
    lines = with_defect(csv_lines(good_rows()), '"an unterminated quote, answer', at=102)
    f.write_text("\n".join(lines) + "\n")
    spec = _spec(tmp_path, f, "csv")
    n, q_lines, q = result_of(spec)
    assert (n, q_lines) == (GOOD, [102])
    assert q.column("reason")[0].as_py().startswith("unterminated quote")
    assert_prompts_complete(spec, GOOD)


def test_csv_quote_closed_lines_later_is_contained(tmp_path):
    """A stray opening quote that a stray quote ten lines later closes, with the right field count:
    the lines between are complete records of their own, so the opening quote is the defect. Only
    its line is lost; the line with the stray closing quote is a valid (lenient) row."""
    f = tmp_path / "data.csv"
    lines = with_defect(csv_lines(good_rows()), '"stray open, answer', at=50)
    lines = with_defect(lines, 'stray close", answer', at=60)
    f.write_text("\n".join(lines) + "\n")
    spec = _spec(tmp_path, f, "csv")
    n, q_lines, q = result_of(spec)
    assert (n, q_lines) == (GOOD + 1, [50])
    assert "lines 51-59 are complete records" in q.column("reason")[0].as_py()
    assert_prompts_complete(spec, GOOD)


def test_csv_quote_closed_with_the_wrong_field_count(tmp_path):
    f = tmp_path / "data.csv"
    lines = with_defect(csv_lines(good_rows()), '"open here, answer', at=50)
    lines = with_defect(lines, "a prose line", at=51)
    lines = with_defect(lines, 'closing" here, and, more', at=52)
    f.write_text("\n".join(lines) + "\n")
    n, q_lines, q = result_of(_spec(tmp_path, f, "csv"))
    assert n == GOOD
    assert q_lines == [50, 51, 52]
    assert q.column("reason")[0].as_py().startswith("unbalanced quote: lines 50-52")


def test_csv_embedded_newlines_and_escaped_quotes_are_one_good_row(tmp_path):
    f = tmp_path / "data.csv"
    lines = with_defect(
        csv_lines(good_rows()), '"a ""quoted"" prompt\nover two lines?",fine', at=101
    )
    f.write_text("\n".join(lines) + "\n")
    spec = _spec(tmp_path, f, "csv")
    n, q_lines, _ = result_of(spec)
    assert (n, q_lines) == (GOOD + 1, [])
    assert 'a "quoted" prompt\nover two lines?' in ingest(spec).table.column("prompt").to_pylist()


def test_csv_wrong_field_count(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("\n".join(with_defect(csv_lines(good_rows()), "one,two,three", at=101)) + "\n")
    n, q_lines, q = result_of(_spec(tmp_path, f, "csv"))
    assert (n, q_lines) == (GOOD, [101])
    assert q.column("reason")[0].as_py().startswith("wrong field count")


# ---------------------------------------------------------------- kinds where every row arrives


def test_bom_in_jsonl_and_csv(tmp_path):
    j = tmp_path / "bom.jsonl"
    j.write_bytes(b"\xef\xbb\xbf" + "\n".join(jsonl_lines(good_rows())).encode() + b"\n")
    assert result_of(_spec(tmp_path, j, "jsonl"))[:2] == (GOOD, [])
    c = tmp_path / "bom.csv"
    c.write_bytes(b"\xef\xbb\xbf" + "\n".join(csv_lines(good_rows())).encode() + b"\n")
    assert result_of(_spec(tmp_path, c, "csv"))[:2] == (GOOD, [])  # the first column is "prompt"
    d = tmp_path / "bom.json"
    d.write_bytes(b"\xef\xbb\xbf" + json.dumps(good_rows()).encode())
    assert result_of(_spec(tmp_path, d, "json"))[:2] == (GOOD, [])


def test_crlf_line_endings(tmp_path):
    j = tmp_path / "crlf.jsonl"
    j.write_bytes("\r\n".join(jsonl_lines(good_rows())).encode() + b"\r\n")
    assert result_of(_spec(tmp_path, j, "jsonl"))[:2] == (GOOD, [])
    c = tmp_path / "crlf.csv"
    c.write_bytes("\r\n".join(csv_lines(good_rows())).encode() + b"\r\n")
    spec = _spec(tmp_path, c, "csv")
    assert result_of(spec)[:2] == (GOOD, [])
    assert ingest(spec).table.column("response")[0].as_py() == "answer 0."


def test_duplicate_rows_arrive_with_distinct_ids(tmp_path):
    f = tmp_path / "dup.jsonl"
    lines = jsonl_lines(good_rows())
    f.write_text("\n".join([*lines, lines[5]]) + "\n")
    table = ingest(_spec(tmp_path, f, "jsonl")).table
    assert table.num_rows == GOOD + 1
    assert len(set(table.column("id").to_pylist())) == GOOD + 1  # the audit removes the copy


def test_truncated_gzip_keeps_every_line_before_the_damage(tmp_path):
    f = tmp_path / "cut.jsonl.gz"
    comp = zlib.compressobj(wbits=31)  # a gzip stream
    head = "\n".join(jsonl_lines(good_rows())).encode() + b"\n"
    body = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.compress(b'{"prompt": "the lost tail?", "response": "gone"}\n' * 50) + comp.flush()
    f.write_bytes(body + tail[: len(tail) // 2])
    n, q_lines, q = result_of(_spec(tmp_path, f, "jsonl.gz"))
    assert n == GOOD
    assert q_lines == [GOOD + 1]
    assert "truncated or damaged compressed file" in q.column("reason")[0].as_py()


def test_mixed_encodings_in_one_glob(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text("\n".join(jsonl_lines(good_rows(100))) + "\n")
    latin = [json.dumps(r, ensure_ascii=False) for r in good_rows(100, start=100)]
    latin[10] = json.dumps({"prompt": "crème brûlée?", "response": "x"}, ensure_ascii=False)
    (tmp_path / "in" / "b.jsonl").write_bytes("\n".join(latin).encode("latin-1") + b"\n")
    r = ingest(_spec(tmp_path, tmp_path / "in" / "*.jsonl", "jsonl"))
    assert r.table.num_rows == GOOD - 1
    ((file, line),) = [(x["file"], x["line"]) for x in r.quarantine.to_pylist()]
    assert file.endswith("in/b.jsonl") and line == 11


# ---------------------------------------------------------------- one clear error


def test_empty_file_names_the_file(tmp_path):
    f = tmp_path / "empty.jsonl"
    f.write_text("")
    with pytest.raises(
        SourceError, match=r"source 'src': .*empty.jsonl is empty.*fix location.path"
    ):
        ingest(_spec(tmp_path, f, "jsonl"))


def test_top_level_object_names_the_records_key(tmp_path):
    f = tmp_path / "wrapped.json"
    f.write_text(json.dumps({"version": 2, "data": good_rows()}))
    with pytest.raises(
        SourceError, match=r"wrapped.json .*'data' holds a list of 200.*records_key: data"
    ):
        ingest(_spec(tmp_path, f, "json"))
    assert ingest(_spec_records(tmp_path, f)).table.num_rows == GOOD  # the fix it names works


def _spec_records(tmp_path, f):
    entry = {
        "name": "src",
        "kind": "local",
        "location": {"path": str(f), "records_key": "data"},
        "format": "json",
        "mapping": {"prompt": "prompt", "response": "response"},
    }
    reg, prof = write_registry(tmp_path / "cfg2", [entry])
    return load_registry(reg, prof).source("src")


def test_wrong_format_names_the_format(tmp_path):
    f = tmp_path / "actually.jsonl"
    f.write_text("\n".join(csv_lines(good_rows())) + "\n")
    with pytest.raises(
        SourceError, match=r"no line of .*actually.jsonl parses as jsonl.*set format: csv"
    ):
        ingest(_spec(tmp_path, f, "jsonl"))


def test_parquet_with_a_different_schema_in_a_glob(tmp_path):
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.Table.from_pylist(good_rows(100)), tmp_path / "pq" / "a.parquet")
    pq.write_table(
        pa.Table.from_pylist(
            [{"question": r["prompt"], "response": r["response"]} for r in good_rows(100)]
        ),
        tmp_path / "pq" / "b.parquet",
    )
    with pytest.raises(
        SourceError, match=r"b.parquet has no column\(s\) \['prompt'\].*fix the mapping"
    ):
        ingest(_spec(tmp_path, tmp_path / "pq" / "*.parquet", "parquet"))


def test_numbers_become_text_only_where_the_registry_says_so(tmp_path):
    f = tmp_path / "ids.jsonl"
    f.write_text(
        "\n".join(jsonl_lines(good_rows()) + ['{"prompt": 12345, "response": "x"}']) + "\n"
    )
    assert result_of(_spec(tmp_path, f, "jsonl"))[:2] == (GOOD, [201])
    n, q_lines, _ = result_of(_spec(tmp_path, f, "jsonl", coerce=["prompt"]))
    assert (n, q_lines) == (GOOD + 1, [])


def test_upstream_ids_are_kept_and_reuse_is_reported(tmp_path):
    from safetygraph.sources.quality import reused_source_ids

    rows = [{**r, "uid": f"u{i}"} for i, r in enumerate(good_rows())]
    rows.append({"prompt": "a different question?", "response": "x", "uid": "u7"})  # u7 reused
    f = tmp_path / "ids.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    table = ingest(
        _spec(
            tmp_path,
            f,
            "jsonl",
            mapping={"prompt": "prompt", "response": "response", "source_id": "uid"},
        )
    ).table
    metas = [json.loads(m) for m in table.column("meta").to_pylist()]
    assert metas[0]["source_id"] == "u0"
    assert reused_source_ids(table) == {"reused": 1, "examples": ["u7"]}


def test_gzip_fixture_is_a_real_gzip(tmp_path):
    """The truncated-gzip case is a real gzip stream cut short (the stdlib reader agrees)."""
    f = tmp_path / "ok.jsonl.gz"
    with gzip.open(f, "wt") as g:
        g.write("\n".join(jsonl_lines(good_rows())) + "\n")
    assert result_of(_spec(tmp_path, f, "jsonl.gz"))[:2] == (GOOD, [])
