"""A reconstructable job for test_multiprocess (child processes import it by module path)."""

from safetygraph.location import definitions


def source_job():
    return definitions.build_defs().resolve_job_def(definitions.SOURCE_JOB)
