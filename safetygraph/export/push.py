"""Publishing a build to the Hugging Face Hub: the build's files, its manifest and its dataset
card (README.md) as one commit to a dataset repository, through ``huggingface_hub``.

The token comes only from the environment (``HF_TOKEN``) and is never printed; the Hub's address
from ``HF_ENDPOINT`` (huggingface_hub's own variable), so a private Hub or a stand-in works the
same way. A build is pushed only when it re-hashes against its manifest and its card validates.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from safetygraph.core.builds import verify_build
from safetygraph.core.storage import Storage
from safetygraph.export.card import CARD_FILE, validate_card


class PushError(RuntimeError):
    pass


@dataclass(frozen=True)
class Pushed:
    repo_id: str
    build_id: str
    files: int
    commit_url: str


def push_build(
    storage: Storage,
    root: str,
    repo_id: str,
    build_id: str | None = None,
    private: bool = False,
    revision: str | None = None,
    token_env: str = "HF_TOKEN",
) -> Pushed:
    """Upload ``root/<build_id>`` (LATEST by default) to the dataset repo ``repo_id``, creating
    it when it does not exist."""
    from huggingface_hub import HfApi

    token = os.environ.get(token_env)
    if not token:
        raise PushError(f"set {token_env} to a Hugging Face token with write access to {repo_id}")
    if build_id is None:
        if not storage.exists(root, "LATEST"):
            raise PushError(f"no build under {storage.uri(root)}: build the recipe first")
        build_id = storage.read_bytes(root, "LATEST").decode().strip()
    problems = verify_build(storage, root, build_id)
    if problems:
        raise PushError(f"build {build_id} does not match its manifest: {'; '.join(problems[:5])}")
    manifest = json.loads(storage.read_bytes(root, build_id, "manifest.json"))
    paths = [e["path"] for e in manifest["files"]]
    if CARD_FILE not in paths:
        raise PushError(f"build {build_id} has no dataset card ({CARD_FILE}); rebuild it")
    card_problems = validate_card(
        storage.read_bytes(root, build_id, CARD_FILE).decode("utf-8"), lambda p: p in paths
    )
    if card_problems:
        raise PushError(f"build {build_id}: its dataset card does not validate: {card_problems}")
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    with tempfile.TemporaryDirectory(prefix="safetygraph-push-") as tmp:
        if storage.is_local:
            folder = Path(storage.path(root, build_id))
        else:  # an object store: the build's files to a local folder first
            folder = Path(tmp)
            for p in [*paths, "manifest.json"]:
                (folder / p).parent.mkdir(parents=True, exist_ok=True)
                storage.fs.get(storage.path(root, build_id, p), str(folder / p))
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="dataset",
            revision=revision,
            allow_patterns=[*paths, "manifest.json"],
            commit_message=f"safetygraph {manifest.get('recipe', root)} build {build_id}",
            commit_description=f"Files, manifest.json and dataset card of build {build_id}.",
        )
    return Pushed(repo_id, build_id, len(paths) + 1, str(info.commit_url))
