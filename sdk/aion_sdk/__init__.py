"""A typed client of Aion's HTTP API, sync (``AionClient``) and async (``AsyncAionClient``)."""

from aion_sdk.async_client import AsyncAionClient
from aion_sdk.client import AionClient
from aion_sdk.errors import (
    AionError,
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from aion_sdk.events import ServerSentEvent, TaskEvent
from aion_sdk.models import CommandResult
from aion_sdk.pages import AsyncPage, Page
from aion_sdk.retries import RetryEvent, RetryPolicy

__version__ = "0.1.0"
__all__ = [
    "AionClient",
    "AionError",
    "ApiError",
    "AsyncAionClient",
    "AsyncPage",
    "BadRequest",
    "CommandResult",
    "Conflict",
    "Forbidden",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "RateLimited",
    "RetryEvent",
    "RetryPolicy",
    "ServerSentEvent",
    "TaskEvent",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "UnsupportedMediaType",
]
