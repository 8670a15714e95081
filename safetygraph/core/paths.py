"""Where the repository is, and how a configured path relative to it resolves."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_repo_path(value: str) -> str:
    """A path relative to the repository root when it names one that exists there; otherwise the
    value unchanged (an absolute path, a URI or a Hugging Face repo id)."""
    candidate = REPO_ROOT / value
    return str(candidate) if not Path(value).is_absolute() and candidate.exists() else value
