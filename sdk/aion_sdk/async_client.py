"""The asynchronous client: ``AsyncAionClient``, the same methods as ``AionClient`` as
coroutines (and ``task_events`` as an async iterator), built from the same ``Call`` values.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from aion_sdk import commands, queries
from aion_sdk.calls import (
    Call,
    ListCall,
    client_headers,
    describe,
    path,
    request_kwargs,
    was_sent,
)
from aion_sdk.errors import AionError, error_for
from aion_sdk.events import FINAL_EVENTS, SSEDecoder, TaskEvent, task_event
from aion_sdk.pages import AsyncPage
from aion_sdk.retries import RetryEvent, RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
STREAM_READ_TIMEOUT = 45.0  # the API sends a keep-alive comment every 15 s


def _async(
    build: Callable[P, Call[R]],
) -> Callable[Concatenate[AsyncAionClient, P], Coroutine[Any, Any, R]]:
    async def method(self: AsyncAionClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.run(build(*args, **kwargs))

    describe(method, build)
    return method


def _async_list(
    build: Callable[P, ListCall[T]],
) -> Callable[Concatenate[AsyncAionClient, P], Coroutine[Any, Any, AsyncPage[T]]]:
    async def method(self: AsyncAionClient, /, *args: P.args, **kwargs: P.kwargs) -> AsyncPage[T]:
        return await self.page(build(*args, **kwargs))

    describe(method, build)
    return method


class AsyncAionClient:
    """The asynchronous twin of ``AionClient`` (same arguments); ``async with`` it, or
    ``await close()``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        retry_policy: RetryPolicy | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry_policy = retry_policy or RetryPolicy(max_retries=max_retries)
        self.on_retry = on_retry
        self.timeout = timeout
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers=client_headers(token, api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncAionClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def _sleep(self, event: RetryEvent) -> None:
        if self.on_retry is not None:
            self.on_retry(event)
        await asyncio.sleep(event.delay)

    async def send(self, call: Call[Any]) -> httpx.Response:
        """Send a call, retrying as the policy says; an error answer raises its ApiError."""
        policy, attempt = self.retry_policy, 0
        while True:
            attempt += 1
            try:
                response = await self.http.request(call.method, call.path, **request_kwargs(call))
            except httpx.TransportError as exc:
                delay = policy.after_connection_error(attempt, call.method, call.safe,
                                                      was_sent(exc))  # fmt: skip
                if delay is None:
                    raise
                await self._sleep(RetryEvent(call.method, call.path, attempt, delay, None, exc))
                continue
            status = response.status_code
            if status < 300 or status in call.accept:
                return response
            error = error_for(status, response.content, response.headers, attempt)
            delay = policy.after_status(attempt, status, error.retry_after)
            if delay is None:
                raise error
            await self._sleep(RetryEvent(call.method, call.path, attempt, delay, status, error))

    async def run(self, call: Call[R]) -> R:
        return call.parse(await self.send(call))

    async def page(self, listing: ListCall[T]) -> AsyncPage[T]:
        items, cursor = await self.run(listing.call)
        return AsyncPage(items, cursor, lambda at: self.page(ListCall(listing.at(at))))

    # Commands
    create_tenant = _async(commands.create_tenant)
    suspend_tenant = _async(commands.suspend_tenant)
    reinstate_tenant = _async(commands.reinstate_tenant)
    add_user = _async(commands.add_user)
    assign_roles = _async(commands.assign_roles)
    remove_user = _async(commands.remove_user)
    register_model = _async(commands.register_model)
    deploy_agent = _async(commands.deploy_agent)
    update_agent = _async(commands.update_agent)
    retire_agent = _async(commands.retire_agent)
    put_policy = _async(commands.put_policy)
    delete_policy = _async(commands.delete_policy)
    simulate_policy = _async(commands.simulate_policy)
    submit_task = _async(commands.submit_task)
    cancel_task = _async(commands.cancel_task)
    submit_tasks = _async(commands.submit_tasks)
    create_api_key = _async(commands.create_api_key)
    revoke_api_key = _async(commands.revoke_api_key)
    upload_module = _async(commands.upload_module)

    # Queries
    get_command = _async(queries.get_command)
    list_tenants = _async_list(queries.list_tenants)
    get_tenant = _async(queries.get_tenant)
    list_users = _async_list(queries.list_users)
    get_module = _async(queries.get_module)
    list_api_keys = _async_list(queries.list_api_keys)
    list_models = _async_list(queries.list_models)
    get_model = _async(queries.get_model)
    list_agents = _async_list(queries.list_agents)
    get_agent = _async(queries.get_agent)
    list_agent_versions = _async_list(queries.list_agent_versions)
    list_policies = _async_list(queries.list_policies)
    get_policy = _async(queries.get_policy)
    list_tasks = _async_list(queries.list_tasks)
    get_task = _async(queries.get_task)
    get_task_status = _async(queries.get_task_status)
    list_runs = _async_list(queries.list_runs)
    list_artifacts = _async_list(queries.list_artifacts)
    download_artifact = _async(queries.download_artifact)
    list_enforcements = _async_list(queries.list_enforcements)
    list_audit = _async_list(queries.list_audit)
    search = _async(queries.search)
    get_counters = _async(queries.get_counters)

    # Sign-in and operations
    auth_login = _async(queries.auth_login)
    auth_callback = _async(queries.auth_callback)
    auth_logout = _async(queries.auth_logout)
    auth_session = _async(queries.auth_session)
    healthz = _async(queries.healthz)
    readyz = _async(queries.readyz)
    health = _async(queries.health)
    metrics = _async(queries.metrics)
    openapi = _async(queries.openapi)

    async def task_events(
        self, tenant: str, task: str, *, last_event_id: int | None = None
    ) -> AsyncIterator[TaskEvent]:
        """The task's events as they happen, from ``last_event_id`` on (its history first),
        until its final event (TaskSucceeded, TaskFailed, ...). A dropped connection is
        resumed after the last event seen, so no event is missed or repeated."""
        target = path(queries.T + "/tasks/{task}/events", tenant=tenant, task=task)
        timeout = httpx.Timeout(self.timeout, read=max(self.timeout, STREAM_READ_TIMEOUT))
        policy, failures, last = self.retry_policy, 0, last_event_id
        while True:
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            try:
                async with self.http.stream(
                    "GET", target, headers=headers, timeout=timeout
                ) as answer:
                    if answer.status_code >= 300:
                        await answer.aread()
                        failures += 1
                        error = error_for(answer.status_code, answer.content, answer.headers,
                                          failures)  # fmt: skip
                        delay = policy.after_status(failures, answer.status_code,
                                                    error.retry_after)  # fmt: skip
                        if delay is None:
                            raise error
                        await self._sleep(RetryEvent("GET", target, failures, delay,
                                               answer.status_code, error))  # fmt: skip
                        continue
                    decoder = SSEDecoder()
                    async for line in answer.aiter_lines():
                        sse = decoder.feed(line.rstrip("\r\n"))
                        if sse is None:
                            continue
                        event = task_event(sse)
                        last, failures = event.id, 0
                        yield event
                        if event.type in FINAL_EVENTS:
                            return
                failures += 1
                ended = AionError(f"the event stream of task {task} ended before its end")
                delay = policy.delay(failures)
                if delay is None:
                    raise ended
                await self._sleep(RetryEvent("GET", target, failures, delay, None, ended))
            except httpx.TransportError as exc:
                failures += 1
                delay = policy.after_connection_error(failures, "GET", True, was_sent(exc))
                if delay is None:
                    raise
                await self._sleep(RetryEvent("GET", target, failures, delay, None, exc))
