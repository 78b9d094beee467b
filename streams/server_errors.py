"""Which errors mean a server we stand on did not answer (and may again), rather than a fault
of what was asked: those are waited out, never turned into a rejection or a failed run."""

from __future__ import annotations

import urllib3.exceptions
from minio.error import ServerError

# Sockets (refused, reset, timed out), urllib3's retries given up, S3's 5xx.
TRANSIENT = (OSError, urllib3.exceptions.HTTPError, ServerError)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT)
