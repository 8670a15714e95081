"""All table and file I/O under one base URI, through fsspec (a local folder, ``s3://``, ``gs://``).

Every write is atomic: data goes to a temporary name beside its target and is moved into place
only when complete, so a reader never sees a half-written file under a final name.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

# the optional extra that brings each object store's fsspec driver
STORE_EXTRAS = {
    "s3": ("s3", "s3fs"),
    "s3a": ("s3", "s3fs"),
    "gs": ("gcs", "gcsfs"),
    "gcs": ("gcs", "gcsfs"),
}


class StorageError(RuntimeError):
    pass


class Storage:
    def __init__(self, base_uri: str):
        self.base_uri = base_uri.rstrip("/")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.base_uri)
        except ImportError as exc:
            scheme = self.base_uri.split("://", 1)[0] if "://" in self.base_uri else ""
            extra, package = STORE_EXTRAS.get(scheme, (None, None))
            if extra is None:
                raise
            raise StorageError(
                f"SAFETYGRAPH_BASE_URI={self.base_uri}: {scheme}:// needs {package}, which the "
                f"'{extra}' extra installs: pip install 'safetygraph[{extra}]'"
            ) from exc
        self.is_local = isinstance(self.fs, LocalFileSystem)

    # -- paths
    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *[p.strip("/") for p in parts if p]])

    def uri(self, *parts: str) -> str:
        path = self.path(*parts)
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    # -- atomic writes
    def _commit(self, tmp: str, final: str) -> None:
        if self.is_local:
            os.replace(tmp, final)  # atomic rename on one filesystem
        else:
            self.fs.mv(tmp, final)  # object stores: the final key appears only once complete

    @contextmanager
    def _atomic(self, *parts: str) -> Iterator[tuple[str, str]]:
        """Yields (temporary path, final path); commits on success, removes the temporary on error."""
        final = self.path(*parts)
        self.fs.makedirs(self.fs._parent(final), exist_ok=True)
        tmp = f"{final}.tmp-{uuid.uuid4().hex}"
        try:
            yield tmp, final
            self._commit(tmp, final)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise

    @contextmanager
    def open_atomic(self, *parts: str) -> Iterator[Any]:
        """A binary file to write ``parts`` through: it appears under its final name only when
        the block completes (a failure leaves nothing)."""
        with self._atomic(*parts) as (tmp, _final), self.fs.open(tmp, "wb") as f:
            yield f

    def write_bytes(self, data: bytes, *parts: str) -> str:
        with self.open_atomic(*parts) as f:
            f.write(data)
        return self.path(*parts)

    def write_table(self, table: pa.Table, *parts: str) -> str:
        with self.open_atomic(*parts) as f:
            pq.write_table(table, f, compression="zstd")
        return self.path(*parts)

    def put_file(self, local_path: str, *parts: str) -> str:
        """Copy a local file to ``parts`` atomically."""
        with self._atomic(*parts) as (tmp, final):
            self.fs.put_file(local_path, tmp)
        return final

    # -- reads
    def read_table(self, *parts: str) -> pa.Table:
        with self.fs.open(self.path(*parts), "rb") as f:
            return pq.read_table(f)

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open(self.path(*parts), "rb") as f:
            return f.read()

    def sha256(self, *parts: str) -> str:
        h = hashlib.sha256()
        with self.fs.open(self.path(*parts), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def listdir(self, *parts: str) -> list[str]:
        path = self.path(*parts)
        if not self.fs.exists(path):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(path, detail=False))


def asset_parts(asset_key: Iterable[str], partition: str | None = None) -> tuple[str, ...]:
    """Where an asset (partition) lives under the base URI: ``assets/<key path>[/<partition>].parquet``."""
    key = list(asset_key)
    if partition is None:
        return ("assets", *key[:-1], f"{key[-1]}.parquet")
    return ("assets", *key, f"{partition}.parquet")
