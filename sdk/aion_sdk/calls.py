"""Each endpoint once, as data: the request to send and how to read its answer.

Both clients run these ``Call`` values (client.py synchronously, async_client.py with
``await``), so an endpoint's path, parameters and headers are written in one place only.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar, cast
from urllib.parse import quote

import httpx

from aion_sdk.models import CommandBody, CommandResult
from aion_sdk.pages import page_parts

VERSION = "0.1.0"
R = TypeVar("R")
T = TypeVar("T")
Params = tuple[tuple[str, str], ...]


class _NoBody:
    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: Any = _NoBody()


@dataclass(frozen=True)
class Call(Generic[R]):
    """One request and the parser of its answer.

    ``safe``: repeating it after a connection error is harmless (an idempotent method, an
    Idempotency-Key, or ids named by the caller). ``accept``: statuses outside 2xx that are
    answers rather than errors (a redirect to follow by hand, a 503 from /readyz).
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], R]
    params: Params = ()
    json: Any = NO_BODY
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    safe: bool = False
    accept: frozenset[int] = frozenset()

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")


@dataclass(frozen=True)
class ListCall(Generic[T]):
    """A list request; the clients turn its answer into a page that can fetch the next."""

    call: Call[tuple[list[T], str | None]]

    def at(self, cursor: str) -> Call[tuple[list[T], str | None]]:
        params = tuple((k, v) for k, v in self.call.params if k != "cursor")
        return replace(self.call, params=(*params, ("cursor", cursor)))


def path(template: str, **params: str) -> str:
    """``template`` with each parameter percent-encoded as one path segment (``:`` and ``@``
    kept, as RFC 3986 allows; ``/`` only in ``artifact``, which the API routes as a path)."""
    return template.format(
        **{k: quote(str(v), safe=":@/" if k == "artifact" else ":@") for k, v in params.items()}
    )


def query(**values: Any) -> Params:
    """Query parameters without the ones left as None; a list repeats its name."""
    found: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None:
            continue
        for one in value if isinstance(value, list | tuple) else [value]:
            found.append((name, str(one).lower() if isinstance(one, bool) else str(one)))
    return tuple(found)


def json_of(response: httpx.Response) -> Any:
    return response.json()


def _json_as(kind: type[R]) -> Callable[[httpx.Response], R]:
    """A parser that reads the JSON body as ``kind`` (a TypedDict: no run-time check)."""

    def parse(response: httpx.Response) -> R:
        return cast(R, response.json())

    return parse


def get(template: str, kind: type[R], params: Params = (), **path_params: str) -> Call[R]:
    return Call("GET", path(template, **path_params), _json_as(kind), params, safe=True)


def listing(template: str, kind: type[T], params: Params = (), **path_params: str) -> ListCall[T]:
    def parse(response: httpx.Response) -> tuple[list[T], str | None]:
        return page_parts(response.json())

    return ListCall(Call("GET", path(template, **path_params), parse, params, safe=True))


def command_result(response: httpx.Response) -> CommandResult:
    return CommandResult(
        http_status=response.status_code,
        body=cast(CommandBody, response.json()),
        idempotency_key=response.request.headers.get("idempotency-key"),
        replayed=response.headers.get("idempotent-replayed", "").lower() == "true",
        location=response.headers.get("location"),
    )


@dataclass(frozen=True)
class CommandOptions:
    """What every command accepts: ``wait`` seconds for the decider's outcome (``Prefer:
    wait=N``, at most 30), an ``idempotency_key`` (a fresh one per call otherwise, kept across
    its retries), and ``if_match``, the aggregate version the command expects."""

    wait: float | None = None
    idempotency_key: str | None = None
    if_match: int | str | None = None

    def headers(self) -> dict[str, str]:
        found = {"Idempotency-Key": self.idempotency_key or str(uuid.uuid4())}
        if self.wait is not None and self.wait > 0:
            found["Prefer"] = f"wait={self.wait:g}"
        if self.if_match is not None:
            found["If-Match"] = f'"{str(self.if_match).strip(chr(34))}"'
        return found


def command(
    method: str,
    template: str,
    body: Mapping[str, Any] | None,
    options: CommandOptions,
    params: Params = (),
    parse: Callable[[httpx.Response], CommandResult] = command_result,
    **path_params: str,
) -> Call[CommandResult]:
    return Call(
        method,
        path(template, **path_params),
        parse,
        params,
        json=NO_BODY if body is None else {k: v for k, v in body.items() if v is not None},
        headers=options.headers(),
        safe=True,  # the Idempotency-Key makes a repeat return the first answer
    )


def client_headers(
    token: str | None, api_key: str | None, extra: Mapping[str, str] | None
) -> dict[str, str]:
    """The headers every request of a client carries: its credential and a User-Agent."""
    if token and api_key:
        raise ValueError("give a token or an api_key, not both")
    found = {"User-Agent": f"aion-sdk/{VERSION}"}
    if token:
        found["Authorization"] = f"Bearer {token}"
    if api_key:
        found["X-API-Key"] = api_key
    return {**found, **(extra or {})}


def was_sent(exc: httpx.TransportError) -> bool:
    """False when the request certainly never reached the server (it could not connect)."""
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def request_kwargs(call: Call[Any]) -> dict[str, Any]:
    """The arguments of ``httpx.Client.request`` for a call."""
    found: dict[str, Any] = {"params": list(call.params), "headers": dict(call.headers)}
    if call.content is not None:
        found["content"] = call.content
    elif call.json is not NO_BODY:
        found["json"] = call.json
    return found


def describe(method: Callable[..., Any], build: Callable[..., Any]) -> None:
    """Give a client method its endpoint's name, docstring and signature (for help() and
    IDEs: the method itself is a generic wrapper)."""
    signature = inspect.signature(build)
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__name__ = method.__qualname__ = build.__name__
    method.__doc__ = build.__doc__
    parameters = [this, *signature.parameters.values()]
    shown = signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)
    vars(method)["__signature__"] = shown  # a function's attribute mypy does not know
