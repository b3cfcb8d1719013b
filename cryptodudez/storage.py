"""Where the lake is and how to reach it, without Dagster: its root, paths and filesystem.

:class:`cryptodudez.resources.lake.Lake` (the Dagster resource) builds every path and opens
its filesystem through :class:`LakeStorage`; the prediction API uses ``LakeStorage`` alone,
so a serving worker reads its model files without importing Dagster or polars.
"""

import posixpath
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import fsspec

MODELS = "models"  # the model layer; resources/lake.py names the data layers


@dataclass(frozen=True)
class LakeStorage:
    """The lake rooted at ``uri`` (a local folder or ``s3://bucket/prefix``) as files.

    Attributes:
        uri: root of the lake.
        endpoint_url: S3 endpoint (a local S3 server, for example); None for AWS.
        region_name: S3 region; None for the client's default.
    """

    uri: str
    endpoint_url: str | None = None
    region_name: str | None = None

    @property
    def is_s3(self) -> bool:
        """True for an S3 lake."""
        return self.uri.startswith("s3://")

    @cached_property
    def fs(self) -> Any:
        """The fsspec filesystem behind the lake (opened on first use)."""
        if not self.is_s3:
            return fsspec.filesystem("file")
        client_kwargs = {k: v for k, v in {"endpoint_url": self.endpoint_url,
                                          "region_name": self.region_name}.items() if v}
        # No listings cache: a long-lived lake (the sensor's, the CLI's, the API's) must see
        # what other processes wrote or deleted since, not a listing it saw once. The
        # filesystem itself is shared: fsspec keeps one async filesystem per (arguments,
        # process), used by all its threads (s3fs runs every call on its own event loop
        # thread), and a new one's first request builds an S3 client, 0.25 to 0.55 s here (by
        # hand, moto on loopback), which every ingest run paid for each lake object it made.
        return fsspec.filesystem("s3", client_kwargs=client_kwargs, use_listings_cache=False)

    @property
    def bucket(self) -> str | None:
        """The S3 lake's bucket (None for a local lake)."""
        return self.root.partition("/")[0] if self.is_s3 else None

    def missing_bucket(self) -> bool:
        """True when the S3 lake's bucket does not exist (always False for a local lake).

        One listing of at most one key under the lake's prefix: what a role scoped to the
        lake may do (the stack grants ``s3:ListBucket`` with an ``s3:prefix`` condition,
        which a HeadBucket request cannot meet). Other errors (no credentials, access
        denied, no endpoint) are raised as they are: they are not a wrong setting.
        """
        if self.bucket is None:
            return False
        prefix = self.root.partition("/")[2]
        try:
            self.fs.call_s3("list_objects_v2", Bucket=self.bucket,
                            Prefix=f"{prefix}/" if prefix else "", MaxKeys=1)
        except FileNotFoundError:
            return True
        return False

    @property
    def root(self) -> str:
        """Root path as fsspec sees it (no scheme for local lakes)."""
        if self.is_s3:
            return self.uri.removeprefix("s3://").rstrip("/")
        return str(Path(self.uri.removeprefix("file://")).absolute())

    def path(self, *parts: str) -> str:
        """Path of ``parts`` under the root."""
        return posixpath.join(self.root, *parts)

    def url(self, *parts: str) -> str:
        """Full URI (``s3://…`` or ``file://…``) of ``parts`` under the root."""
        scheme = "s3://" if self.is_s3 else "file://"
        return scheme + self.path(*parts)

    def read_bytes(self, path: str) -> bytes:
        """Bytes of a file under the lake."""
        return self.fs.cat_file(path)

    def exists(self, path: str) -> bool:
        """True when ``path`` exists."""
        return bool(self.fs.exists(path))

    def ls(self, folder: str) -> list[str]:
        """Paths directly in ``folder`` (files and folders); none when it is missing.

        On S3 one request when the folder exists; for a missing one s3fs also lists the
        parent folder, one more request per 1,000 entries beside it.
        """
        try:
            return list(self.fs.ls(folder, detail=False))
        except FileNotFoundError:
            return []

    def parquet_in(self, folder: str) -> list[str]:
        """Sorted visible ``*.parquet`` paths directly in ``folder``; none when it is missing.

        One listing (:meth:`ls`), where fsspec's ``glob`` made four or five requests on S3
        and an existence check first two more (counted on moto's server;
        ``tests/test_s3.py`` counts the calls). The event lake's index and rollup folders
        have one entry per day, so a missing one's listing grows with the lake's age.
        """
        return sorted(p for p in self.ls(folder)
                      if p.endswith(".parquet") and not posixpath.basename(p).startswith("."))
