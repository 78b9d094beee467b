"""Qdrant: a server URL when configured, else qdrant-client's embedded local mode.

No Qdrant server can be had on these machines. The local mode runs inside the process that
opens it and locks its folder, so the stack starts nothing: it only makes the folder.
"""

from __future__ import annotations

from pathlib import Path

from qdrant_client import QdrantClient

from aion.stack.base import Service, ServiceStatus


class Qdrant(Service):
    name = "qdrant"
    has_process = False

    @property
    def address(self) -> str:
        return self.settings.qdrant_location

    def start(self) -> None:
        Path(self.address).mkdir(parents=True, exist_ok=True)

    def healthy(self) -> bool:
        if self.external:
            client = QdrantClient(url=self.address, timeout=3)
            try:
                client.get_collections()
                return True
            finally:
                client.close()
        return Path(self.address).is_dir()

    def status(self) -> ServiceStatus:
        status = super().status()
        if not self.external:
            status.mode = "in-process"
            status.detail = status.detail or "embedded local mode, opened by the API process"
        return status
