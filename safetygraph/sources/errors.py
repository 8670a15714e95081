"""The two kinds of failure while reading a source: the whole source, or one row."""


class RegistryError(ValueError):
    """A registry or profile entry that cannot be used; the message names the entry and the fix."""


class SourceError(RuntimeError):
    """A source that cannot be read at all; the message names the source, file and fix."""


class RowError(ValueError):
    """One row that cannot be used; it goes to the quarantine with this message as its reason."""


SKIPPED = "skipped"


class RowSkipped(RowError):
    """A well-formed row the source's builder cannot use by design (a tau2 task without expected
    agent actions has no trace to build without a model). It is kept in the quarantine table with
    its reason, prefixed ``skipped:``, and not counted against ``quarantine_rate_max``: it is not
    bad input."""

    def __init__(self, reason: str):
        super().__init__(f"{SKIPPED}: {reason}")
