"""The per-source chain with the multiprocess executor: every step in its own process, tables passed
only through the Parquet IO manager (as in `dagster dev` runs and, one pod per step, in the cluster)."""

from dagster import execute_job, instance_for_test, reconstructable

from safetygraph.core.storage import Storage
from tests.conftest import REPO
from tests.multiprocess_target import source_job


def test_steps_in_separate_processes_share_data_through_storage(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETYGRAPH_BASE_URI", str(tmp_path / "data"))
    monkeypatch.setenv("SAFETYGRAPH_PROFILE", "demo")
    monkeypatch.chdir(REPO)
    with instance_for_test() as instance:
        result = execute_job(
            reconstructable(source_job),
            instance=instance,
            tags={"dagster/partition": "demo_pairs"},
            run_config={"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}},
        )
        assert result.success
        pids = {e.pid for e in result.all_events if e.is_step_start}
        assert len(pids) > 1  # really separate processes
        audited = Storage(str(tmp_path / "data")).read_table(
            "assets", "audited", "demo_pairs.parquet"
        )
        assert audited.num_rows == 43
