"""The two kinds of failure while reading a source: the whole source, or one row."""


class SourceError(RuntimeError):
    """A source that cannot be read at all; the message names the source, file and fix."""


class RowError(ValueError):
    """One row that cannot be used; it goes to the quarantine with this message as its reason."""
