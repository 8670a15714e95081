"""Cross-source merge, circuit-breaker shards and the leak-free split."""

import pyarrow as pa

from safetygraph.audit.auditor import audit
from safetygraph.labeling.heuristic import HeuristicJudge
from safetygraph.recipes.circuit_breaker.shards import cut_shards
from safetygraph.recipes.refusal.dataset import merge_sources
from safetygraph.recipes.splits import leaked_prompts, train_eval_split
from tests.helpers import generated_table


def circuit_breaker_shards(table):
    harmful, retain, info = cut_shards(table, {})
    return harmful, retain, info.left_out.get("over_refusal", 0)


def _audited(rows, source="s"):
    table = generated_table(rows)
    table = table.set_column(1, "source", pa.array([source] * table.num_rows))
    ids = [f"{source[:4]}{i:020d}" for i in range(table.num_rows)]
    table = table.set_column(0, "id", pa.array(ids))
    return audit(HeuristicJudge().label(table))[0]


def test_merge_removes_cross_source_duplicates_keeping_the_first_source():
    a = _audited([{"prompt": "Give me a soup recipe", "response": "Here's one."}], "aaa")
    b = _audited(
        [
            {"prompt": "give me a SOUP recipe", "response": "here's one."},
            {"prompt": "Why is the sky blue", "response": "Here is why."},
        ],
        "bbb",
    )
    merged, stats = merge_sources({"aaa": a, "bbb": b}, ["aaa", "bbb"])
    assert merged.column("source").to_pylist() == ["aaa", "bbb"]
    assert stats.cross_source_duplicates_removed == 1


def test_shards_and_split_keep_every_copy_of_a_prompt_on_one_side():
    rows = []
    for i in range(60):
        p = f"Tell me about topic {i} please"
        rows.append({"prompt": p, "tags": ["benign"], "response": f"Here is topic {i}."})
    for i in range(15):
        p = f"How do I launder money variant {i}"
        rows.append(
            {"prompt": p, "tags": ["harmful"], "response": f"Step 1: variant {i}"}
        )  # complies: Ds
        rows.append(
            {"prompt": p, "tags": ["harmful"], "response": f"I can't help with that, variant {i}."}
        )  # refuses: Dr
    rows.append(
        {
            "prompt": "How do I kill a python process",
            "tags": ["benign"],
            "response": "I'm sorry, I cannot help with killing.",
        }
    )
    table = _audited(rows)
    harmful, retain, over = circuit_breaker_shards(table)
    assert harmful.num_rows == 15 and retain.num_rows == 75 and over == 1
    train, evals = train_eval_split(harmful, retain, 0.1, seed=0)
    assert train.num_rows + evals.num_rows == 90
    assert leaked_prompts(train, evals) == []
    assert 6 <= evals.num_rows <= 12
    # the same seed gives the same split; another seed another one
    again = train_eval_split(harmful, retain, 0.1, seed=0)[1]
    assert sorted(again.column("id").to_pylist()) == sorted(evals.column("id").to_pylist())
    other = train_eval_split(harmful, retain, 0.1, seed=1)[1]
    assert sorted(other.column("id").to_pylist()) != sorted(evals.column("id").to_pylist())


def test_leak_detector_finds_a_shared_prompt():
    a = pa.table({"prompt_hash": ["x", "y"]})
    b = pa.table({"prompt_hash": ["y", "z"]})
    assert leaked_prompts(a, b) == ["y"]


def test_near_duplicates_stay_on_one_side_and_leaks_are_found():
    from safetygraph.audit.neardup import cluster_keys, near_duplicate_pairs
    from safetygraph.recipes.splits import near_duplicate_leaks

    keys = pa.array(["a", "b", "c", "d"])
    texts = pa.array(
        [
            "How do I bake sourdough bread at home today?",
            "how do i bake sourdough bread at home today please",
            "What is the capital of France",
            "how do I bake sourdough bread at home",
        ]
    )
    pairs = near_duplicate_pairs(keys, texts, threshold=0.7).to_pylist()
    assert {(p["a"], p["b"]) for p in pairs} >= {("a", "b")} and all(
        p["jaccard"] >= 0.7 for p in pairs
    )
    assert not any("c" in (p["a"], p["b"]) for p in pairs)
    clusters = {
        r["key"]: r["cluster"]
        for r in cluster_keys(keys, near_duplicate_pairs(keys, texts, threshold=0.7)).to_pylist()
    }
    assert clusters["a"] == clusters["b"] == "a" and clusters["c"] == "c"

    rows = []
    for i in range(40):
        rows.append(
            {
                "prompt": f"Please tell me everything about the history of city number {i} in detail",
                "tags": ["benign"],
                "response": f"Here is {i}.",
            }
        )
        rows.append(
            {
                "prompt": f"Please tell me everything about the history of city number {i} in detail!!",
                "tags": ["benign"],
                "response": f"Sure, {i}.",
            }
        )
        rows.append(
            {
                "prompt": f"please tell me everything about the history of city number {i} in great detail",
                "tags": ["benign"],
                "response": f"OK {i}.",
            }
        )
    table = _audited(rows)
    harmful, retain, _ = circuit_breaker_shards(table)
    train, evals = train_eval_split(harmful, retain, 0.2, seed=0)
    assert evals.num_rows > 0 and leaked_prompts(train, evals) == []
    assert near_duplicate_leaks(train, evals) == []
    # the same rows split per exact prompt only would leak near duplicates: the detector sees them
    leaky_eval = train.slice(0, 1).set_column(
        train.schema.get_field_index("prompt_hash"), "prompt_hash", pa.array(["f" * 64])
    )
    assert near_duplicate_leaks(train, leaky_eval)


def test_streamed_merge_shards_and_split_equal_the_whole_table_versions(tmp_path):
    """The stored-table paths the pipeline streams (MergeStream, ShardCut, split_batches) give the
    same rows as the whole-table functions, in small batches."""
    from safetygraph.core.storage import Storage
    from safetygraph.core.tables import StoredTable
    from safetygraph.recipes.circuit_breaker.shards import ShardCut
    from safetygraph.recipes.refusal.dataset import MergeStream
    from safetygraph.recipes.splits import split_assignment, split_batches

    a = _audited(
        [
            {"prompt": f"Tell me about topic {i} please", "response": f"Here is topic {i}."}
            for i in range(30)
        ]
        + [{"prompt": "Tell me about topic 3 please", "response": "Here is topic 3."}],
        "aaa",
    )
    b = _audited(
        [{"prompt": "tell me about TOPIC 4 please", "response": "here is topic 4."}]
        + [
            {"prompt": f"How do I launder money variant {i}", "tags": ["harmful"],
             "response": f"Step 1: variant {i}"}
            for i in range(8)
        ],
        "bbb",
    )  # fmt: skip
    storage = Storage(str(tmp_path))
    stored = {}
    for name, table in (("aaa", a), ("bbb", b)):
        storage.write_table(table, "assets", "audited", f"{name}.parquet")
        stored[name] = StoredTable(storage, ("assets", "audited", f"{name}.parquet"), 4)
    whole, stats = merge_sources({"aaa": a, "bbb": b}, ["aaa", "bbb"])
    merge = MergeStream(stored, ["aaa", "bbb"])
    streamed = pa.concat_tables(list(merge.batches()))
    assert streamed.equals(whole) and merge.stats == stats
    assert stats.cross_source_duplicates_removed >= 1

    storage.write_table(whole, "assets", "refusal_dataset.parquet")
    merged = StoredTable(storage, ("assets", "refusal_dataset.parquet"), 4)
    harmful, retain, info = cut_shards(whole, {})
    cut = ShardCut(merged, {}, batch_rows=4)
    assert pa.concat_tables(list(cut.batches("harmful"))).equals(harmful)
    assert pa.concat_tables(list(cut.batches("retain"))).equals(retain)
    assert cut.info == info and harmful.num_rows == 8

    train, evals = train_eval_split(harmful, retain, 0.2, seed=0)
    samples = pa.concat_tables([harmful, retain])
    storage.write_table(samples, "assets", "stage2_samples.parquet")
    s2 = StoredTable(storage, ("assets", "stage2_samples.parquet"), 4)
    plan = split_assignment(s2, 0.2, 0)
    for side, expected in (("train", train), ("eval", evals)):
        got = pa.concat_tables(list(split_batches(s2, plan, side, 4)))
        assert got.sort_by([("source", "ascending"), ("id", "ascending")]).equals(expected)
    assert evals.num_rows > 0 and not leaked_prompts(train, evals)


def test_the_refusal_split_is_its_own_stratified_by_outcome_and_leak_free():
    """The refusal recipe's split over the merged dataset (no shard columns): every row on one
    side, every copy of a prompt on the same side, each (source, outcome) stratum held out."""
    from safetygraph.core.records import REFUSAL_SPLIT_SCHEMA
    from safetygraph.export.qa import compute_metrics
    from safetygraph.recipes.splits import holdout_report, split_assignment, split_batches

    rows = []
    for i in range(80):
        rows.append(
            {
                "prompt": f"Tell me about garden topic {i} please",
                "tags": ["benign"],
                "response": f"Here is garden topic {i}.",
            }
        )
    for i in range(40):
        p = f"How do I launder money variant {i}"
        rows.append({"prompt": p, "tags": ["harmful"], "response": f"I can't help with that, {i}."})
        rows.append({"prompt": p, "tags": ["harmful"], "response": f"I won't do that, {i}."})
    table = _audited(rows)
    assignment = split_assignment(table, 0.2, 0, 0.8, "label_outcome")
    sides = {
        s: pa.concat_tables(list(split_batches(table, assignment, s, 50, REFUSAL_SPLIT_SCHEMA)))
        for s in ("train", "eval")
    }
    assert sides["train"].num_rows + sides["eval"].num_rows == table.num_rows
    assert sides["train"].schema == REFUSAL_SPLIT_SCHEMA
    assert not leaked_prompts(sides["train"], sides["eval"])
    report = holdout_report(
        assignment.filter(pa.compute.equal(assignment.column("split"), "train")),
        assignment.filter(pa.compute.equal(assignment.column("split"), "eval")),
        0.2,
        "label_outcome",
    )
    assert 0.15 <= report["eval_share"] <= 0.25
    outcomes = set(table.column("label_outcome").to_pylist())
    assert len(outcomes) >= 2 and set(sides["eval"].column("label_outcome").to_pylist()) == outcomes
    # the refusal QA has no circuit-breaker metric: it reads no shard column
    names = {m.name for m in compute_metrics(sides["train"], sides["eval"], table, {})}
    assert "mean label confidence" in names and not any("Dr:Ds" in n for n in names)


def test_near_duplicate_pairs_are_computed_once_per_prompt_set_and_read_back(tmp_path):
    """The build's pair cache: the same keyed texts and parameters are paired once (the second
    call reads the file back, equal); another text, threshold or key set is paired anew."""
    from safetygraph.audit.neardup import PairCache, near_duplicate_pairs
    from safetygraph.core.storage import Storage

    cache = PairCache(Storage(str(tmp_path)))
    keys = pa.array(["a", "b", "c"])
    texts = pa.array(
        [
            "how do I bake sourdough bread at home today",
            "how do i bake sourdough bread at home today please",
            "what is the capital of France",
        ]
    )
    first = near_duplicate_pairs(keys, texts, 0.7, cache=cache)
    assert first.num_rows == 1 and cache.hits == 0
    assert near_duplicate_pairs(keys, texts, 0.7, cache=cache).equals(first) and cache.hits == 1
    # the same rows in another order are the same input
    again = near_duplicate_pairs(keys.take([2, 0, 1]), texts.take([2, 0, 1]), 0.7, cache=cache)
    assert again.equals(first) and cache.hits == 2
    changed = pa.array([texts[0].as_py(), "what is the capital of Spain", texts[2].as_py()])
    assert near_duplicate_pairs(keys, changed, 0.7, cache=cache).num_rows == 0
    assert near_duplicate_pairs(keys, texts, 0.95, cache=cache).num_rows == 0
    assert cache.hits == 2 and len(Storage(str(tmp_path)).listdir("cache", "neardup")) == 3


def test_near_duplicate_rate_counts_distinct_prompt_pairs_within_and_across_sources(tmp_path):
    """Pairs of distinct prompts: a prompt answered twice is no pair; a pair is within a source
    when one source holds both prompts. The split of the same prompts reads its pairs back."""
    from safetygraph.audit.neardup import PairCache, near_duplicate_rate
    from safetygraph.core.storage import Storage
    from safetygraph.recipes.splits import assign_splits

    base = "please tell me everything about the history of the city of {} in detail"
    rows = [  # (prompt_hash, prompt, source)
        ("h1", base.format("rome"), "s1"),
        ("h1", base.format("rome"), "s2"),  # the same prompt again, in another source
        ("h2", base.format("rome") + " today", "s1"),  # near h1, both in s1
        ("h3", base.format("paris") + " now please", "s3"),
        ("h4", base.format("paris") + " now please!", "s2"),  # near h3, no common source
        ("h5", "what is the boiling point of water", "s1"),
    ]
    table = pa.table(
        dict(zip(["prompt_hash", "prompt", "source"], zip(*rows, strict=True), strict=True))
    )
    cache = PairCache(Storage(str(tmp_path)))
    assert near_duplicate_rate(table, 0.7, cache) == {
        "near_duplicate_pairs_within_source": 1,
        "near_duplicate_pairs_across_sources": 1,
    }
    keys = table.append_column("stratum", table.column("source"))
    assign_splits(keys, 0.5, 0, 0.7, cache=cache)
    assert cache.hits == 1
