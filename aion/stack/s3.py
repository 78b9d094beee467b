"""An S3-compatible object store: s3s-fs (built once with cargo) serving a folder.

Our code speaks to it only through the ``minio`` SDK, so any S3 endpoint can replace it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minio import Minio
from minio.error import S3Error

from aion.settings import S3_PORT
from aion.stack.base import Service
from aion.stack.prerequisites import cargo
from aion.stack.process import run_checked

# 0.15+ needs a Rust newer than the 1.95 these machines carry; 0.14.1 builds with --locked.
S3S_FS_VERSION = "0.14.1"


MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")


def stat_or_none(client: Minio, bucket: str, key: str) -> Any:
    """The object's stat, or None when it is not there (other S3 errors still raise)."""
    try:
        return client.stat_object(bucket, key)
    except S3Error as exc:
        if exc.code in MISSING:
            return None
        raise


def read_object(client: Minio, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def s3_client(endpoint: str, access_key: str, secret_key: str, secure: bool) -> Minio:
    return Minio(
        endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region="us-east-1"
    )


class S3(Service):
    name = "s3"
    port = S3_PORT
    ready_timeout = 20.0

    @property
    def address(self) -> str:
        return self.settings.s3

    @property
    def binary(self) -> Path:
        return self.cache / f"s3s-fs-{S3S_FS_VERSION}" / "bin" / "s3s-fs"

    def prepare(self) -> None:
        if self.binary.exists():
            return
        run_checked(
            [
                str(cargo()),
                "install",
                "s3s-fs",
                "--version",
                S3S_FS_VERSION,
                "--locked",
                "--features",
                "binary",
                "--root",
                str(self.binary.parent.parent),
            ],
            what="Building s3s-fs with cargo (a one-time step of about two minutes)",
            log=self.home / "logs" / "install.log",
        )

    def start(self) -> None:
        self.check_port_free()
        root = self.data_dir / "objects"
        root.mkdir(parents=True, exist_ok=True)
        self.process.spawn(
            [
                str(self.binary),
                "--host",
                "127.0.0.1",
                "--port",
                str(S3_PORT),
                "--access-key",
                self.settings.s3_access_key,
                "--secret-key",
                self.settings.s3_secret_key,
                str(root),
            ]
        )

    def client(self) -> Minio:
        s = self.settings
        return s3_client(self.address, s.s3_access_key, s.s3_secret_key, s.s3_secure)

    def healthy(self) -> bool:
        self.client().list_buckets()
        return True

    def after_ready(self) -> None:
        client = self.client()
        if not client.bucket_exists(self.settings.s3_bucket):
            client.make_bucket(self.settings.s3_bucket)
