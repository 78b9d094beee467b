"""The synchronous client: ``AionClient(base_url, token=... | api_key=...)``.

Each endpoint method is built from its ``Call`` (commands.py, queries.py) and run here with
retries: 429 and 503 after their Retry-After, connection errors when repeating is safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
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
from aion_sdk.events import FINAL_EVENTS, TaskEvent, parse_events, task_event
from aion_sdk.pages import Page
from aion_sdk.retries import RetryEvent, RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
STREAM_READ_TIMEOUT = 45.0  # the API sends a keep-alive comment every 15 s


def _sync(build: Callable[P, Call[R]]) -> Callable[Concatenate[AionClient, P], R]:
    def method(self: AionClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.run(build(*args, **kwargs))

    describe(method, build)
    return method


def _sync_list(build: Callable[P, ListCall[T]]) -> Callable[Concatenate[AionClient, P], Page[T]]:
    def method(self: AionClient, /, *args: P.args, **kwargs: P.kwargs) -> Page[T]:
        return self.page(build(*args, **kwargs))

    describe(method, build)
    return method


class AionClient:
    """A client of one Aion API. Give ``token`` (an OIDC access token, sent as Bearer) or
    ``api_key`` (sent as X-API-Key). ``max_retries`` bounds the retries of one call;
    ``on_retry`` is told of each one before the client sleeps. Use it as a context manager,
    or call ``close()``."""

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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry_policy = retry_policy or RetryPolicy(max_retries=max_retries)
        self.on_retry = on_retry
        self.timeout = timeout
        self.http = httpx.Client(
            base_url=base_url,
            headers=client_headers(token, api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> AionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _sleep(self, event: RetryEvent) -> None:
        if self.on_retry is not None:
            self.on_retry(event)
        time.sleep(event.delay)

    def send(self, call: Call[Any]) -> httpx.Response:
        """Send a call, retrying as the policy says; an error answer raises its ApiError."""
        policy, attempt = self.retry_policy, 0
        while True:
            attempt += 1
            try:
                response = self.http.request(call.method, call.path, **request_kwargs(call))
            except httpx.TransportError as exc:
                delay = policy.after_connection_error(attempt, call.method, call.safe,
                                                      was_sent(exc))  # fmt: skip
                if delay is None:
                    raise
                self._sleep(RetryEvent(call.method, call.path, attempt, delay, None, exc))
                continue
            status = response.status_code
            if status < 300 or status in call.accept:
                return response
            error = error_for(status, response.content, response.headers, attempt)
            delay = policy.after_status(attempt, status, error.retry_after)
            if delay is None:
                raise error
            self._sleep(RetryEvent(call.method, call.path, attempt, delay, status, error))

    def run(self, call: Call[R]) -> R:
        return call.parse(self.send(call))

    def page(self, listing: ListCall[T]) -> Page[T]:
        items, cursor = self.run(listing.call)
        return Page(items, cursor, lambda at: self.page(ListCall(listing.at(at))))

    # Commands
    create_tenant = _sync(commands.create_tenant)
    suspend_tenant = _sync(commands.suspend_tenant)
    reinstate_tenant = _sync(commands.reinstate_tenant)
    add_user = _sync(commands.add_user)
    assign_roles = _sync(commands.assign_roles)
    remove_user = _sync(commands.remove_user)
    register_model = _sync(commands.register_model)
    deploy_agent = _sync(commands.deploy_agent)
    update_agent = _sync(commands.update_agent)
    retire_agent = _sync(commands.retire_agent)
    put_policy = _sync(commands.put_policy)
    delete_policy = _sync(commands.delete_policy)
    simulate_policy = _sync(commands.simulate_policy)
    submit_task = _sync(commands.submit_task)
    cancel_task = _sync(commands.cancel_task)
    submit_tasks = _sync(commands.submit_tasks)
    create_api_key = _sync(commands.create_api_key)
    revoke_api_key = _sync(commands.revoke_api_key)
    upload_module = _sync(commands.upload_module)

    # Queries
    get_command = _sync(queries.get_command)
    list_tenants = _sync_list(queries.list_tenants)
    get_tenant = _sync(queries.get_tenant)
    list_users = _sync_list(queries.list_users)
    get_module = _sync(queries.get_module)
    list_api_keys = _sync_list(queries.list_api_keys)
    list_models = _sync_list(queries.list_models)
    get_model = _sync(queries.get_model)
    list_agents = _sync_list(queries.list_agents)
    get_agent = _sync(queries.get_agent)
    list_agent_versions = _sync_list(queries.list_agent_versions)
    list_policies = _sync_list(queries.list_policies)
    get_policy = _sync(queries.get_policy)
    list_tasks = _sync_list(queries.list_tasks)
    get_task = _sync(queries.get_task)
    get_task_status = _sync(queries.get_task_status)
    list_runs = _sync_list(queries.list_runs)
    list_artifacts = _sync_list(queries.list_artifacts)
    download_artifact = _sync(queries.download_artifact)
    list_enforcements = _sync_list(queries.list_enforcements)
    list_audit = _sync_list(queries.list_audit)
    search = _sync(queries.search)
    get_counters = _sync(queries.get_counters)

    # Sign-in and operations
    auth_login = _sync(queries.auth_login)
    auth_callback = _sync(queries.auth_callback)
    auth_logout = _sync(queries.auth_logout)
    auth_session = _sync(queries.auth_session)
    healthz = _sync(queries.healthz)
    readyz = _sync(queries.readyz)
    health = _sync(queries.health)
    metrics = _sync(queries.metrics)
    openapi = _sync(queries.openapi)

    def task_events(
        self, tenant: str, task: str, *, last_event_id: int | None = None
    ) -> Iterator[TaskEvent]:
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
                with self.http.stream("GET", target, headers=headers, timeout=timeout) as answer:
                    if answer.status_code >= 300:
                        answer.read()
                        failures += 1
                        error = error_for(answer.status_code, answer.content, answer.headers,
                                          failures)  # fmt: skip
                        delay = policy.after_status(failures, answer.status_code,
                                                    error.retry_after)  # fmt: skip
                        if delay is None:
                            raise error
                        self._sleep(RetryEvent("GET", target, failures, delay,
                                               answer.status_code, error))  # fmt: skip
                        continue
                    for sse in parse_events(answer.iter_lines()):
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
                self._sleep(RetryEvent("GET", target, failures, delay, None, ended))
            except httpx.TransportError as exc:
                failures += 1
                delay = policy.after_connection_error(failures, "GET", True, was_sent(exc))
                if delay is None:
                    raise
                self._sleep(RetryEvent("GET", target, failures, delay, None, exc))
