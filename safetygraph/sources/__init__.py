"""Sources: the registry and profiles (``registry``), readers per file format (``readers``), the
mapping onto canonical records (``rows``, ``mapping``, ``tau2``), the quarantine, and ``ingest``
which ties them together."""
