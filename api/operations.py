"""Every operation `/openapi.json` documents: its name (the SDK's method), parameters, answers.

Routes are declared where they are served; this is their description for clients. A unit test
fails when the application serves a route that is neither here nor deliberately undocumented.
"""

from __future__ import annotations

from api import (
    api_keys,
    artifacts,
    audit,
    batch,
    live,
    policy_simulate,
    queries,
    search,
    service_health,
    tenant_list,
    tenants,
)
from api.command_routes import COMMAND_ROUTES
from api.openapi import LIST_QUERY, Operation, item_of, page_of

T = queries.T
MODULE = {
    "type": "object",
    "properties": {"digest": {"type": "string"}, "size_bytes": {"type": "integer"}},
}

OPERATIONS = [
    *(
        Operation(
            r.method,
            r.path,
            r.summary,
            command=r.record,
            ok={
                "202": "Accepted; decided asynchronously",
                "201" if r.created else "200": "The outcome (when waiting)",
            },
            errors=("400", "404", "409", "413", "415", "422"),
            operation_id=r.operation_id,
        )
        for r in COMMAND_ROUTES
    ),
    Operation(
        "GET",
        "/v1/tenants",
        "Every tenant, by id (platform admins); filters status and prefix",
        errors=("400", "422"),
        operation_id="list_tenants",
        query=("limit", "cursor", "status", "prefix"),
        returns=page_of(tenant_list.TENANT_COLUMNS),
    ),
    Operation(
        "GET",
        T,
        "A tenant, from the read model",
        errors=("404",),
        operation_id="get_tenant",
        returns=item_of((*tenant_list.TENANT_COLUMNS, "limits")),
    ),
    Operation(
        "GET",
        T + "/users",
        "A tenant's users and their roles, by user id",
        errors=("400", "404", "422"),
        operation_id="list_users",
        query=("limit", "cursor"),
        returns=page_of(tenants.USERS.columns),
    ),
    Operation(
        "GET",
        "/v1/commands/{command_id}",
        "A command's status and outcome",
        errors=("404",),
        operation_id="get_command",
        returns={"$ref": "#/components/schemas/CommandOutcome"},
    ),
    Operation(
        "POST",
        T + "/modules",
        "Upload a WASM module (raw bytes, application/wasm); stored under its SHA-256",
        ok={"201": "Stored", "200": "Already stored"},
        errors=("404", "413", "422"),
        operation_id="upload_module",
        returns=MODULE,
    ),
    Operation(
        "GET",
        T + "/modules/{digest}",
        "A stored module's size",
        errors=("400", "404"),
        operation_id="get_module",
        returns=MODULE,
    ),
    *(
        Operation(
            "GET",
            path,
            summary,
            errors=("400", "404", "422"),
            operation_id=f"list_{listing.table}",
            query=(*LIST_QUERY, *listing.filters),
            returns=page_of(listing.columns),
        )
        for path, (listing, summary) in queries.LISTS.items()
    ),
    *(
        Operation(
            "GET",
            path,
            f"One {item.noun}, with its version as ETag",
            ok={"200": "OK", "304": "Not modified (If-None-Match)"},
            errors=("404", "422"),
            operation_id=f"get_{item.noun}",
            query=("after_command",),
            returns=item_of(item.columns),
        )
        for path, item in queries.ITEMS.items()
    ),
    Operation(
        "GET",
        artifacts.PATH.replace("{artifact:path}", "{artifact}"),
        "An artifact's bytes, streamed from the S3 store (ETag: its digest)",
        ok={"200": "The bytes", "304": "Not modified (If-None-Match)"},
        errors=("404",),
        operation_id="download_artifact",
    ),
    Operation(
        "GET",
        search.PATH,
        "Semantic search over the tenant's agents and run outputs (q, kind, limit)",
        errors=("404", "422", "503"),
        operation_id="search",
        query=("q", "kind", "limit"),
    ),
    Operation(
        "GET",
        live.EVENTS_PATH,
        "A task's events live (text/event-stream), resumable with Last-Event-ID",
        ok={"200": "An SSE stream; it ends after the task's final event"},
        # 429: the caller's live streams are at their cap; 503: this server's are.
        errors=("400", "404", "429", "503"),
        operation_id="task_events",
        query=("last_event_id",),
    ),
    Operation(
        "GET",
        live.STATUS_PATH,
        "A task's live status and progress, from Redis (no wait for the read model)",
        errors=("404",),
        operation_id="get_task_status",
    ),
    Operation(
        "GET",
        live.COUNTERS_PATH,
        "The tenant's task and run counters",
        errors=("404",),
        operation_id="get_counters",
    ),
    Operation(
        "GET",
        audit.PATH,
        audit.SUMMARY,
        errors=("400", "404", "422"),
        operation_id="list_audit",
        query=("limit", "cursor", "actor", "kind", "outcome", "since", "until"),
    ),
    Operation(
        "POST",
        api_keys.PATH,
        "Create an API key (name, roles, optional rate_per_s and burst); the response shows "
        "the key once",
        ok={"202": "Accepted; decided asynchronously", "201": "Created (when waiting)"},
        errors=("400", "404", "409", "422"),
        operation_id="create_api_key",
    ),
    Operation(
        "DELETE",
        api_keys.KEY_PATH,
        "Revoke an API key (optional ?reason=)",
        ok={"202": "Accepted; decided asynchronously", "200": "The outcome (when waiting)"},
        errors=("400", "404", "409"),
        operation_id="revoke_api_key",
        query=("reason",),
    ),
    Operation(
        "POST",
        batch.PATH,
        'Submit up to 1,000 tasks ({"tasks": [...]}, each as for POST .../tasks); 202 with a '
        "command id or a problem per item",
        ok={"202": "At least one task accepted; see each item"},
        errors=("400", "404", "413", "415", "422"),
        operation_id="submit_tasks",
    ),
    Operation(
        "POST",
        policy_simulate.PATH,
        policy_simulate.SUMMARY,
        errors=("400", "404", "413", "415", "422"),
        operation_id="simulate_policy",
    ),
    Operation(
        "GET",
        "/auth/login",
        "Sign in: authorization code with PKCE at the issuer; binds the sign-in to this browser",
        ok={"302": "To the issuer, with the aion_login cookie set"},
        errors=("502",),
        operation_id="auth_login",
        query=("return_to",),
    ),
    Operation(
        "GET",
        "/auth/callback",
        "The issuer's redirect: sets the session cookie",
        ok={"303": "Back to return_to, signed in"},
        errors=("400", "401", "502"),
        operation_id="auth_callback",
        query=("state", "code", "error"),
    ),
    Operation(
        "POST",
        "/auth/logout",
        "End the browser session",
        ok={"303": "To the console"},
        operation_id="auth_logout",
    ),
    Operation(
        "GET",
        "/auth/session",
        "Who the session cookie signs in",
        errors=("401",),
        operation_id="auth_session",
    ),
    Operation("GET", "/healthz", "Liveness", operation_id="healthz"),
    Operation(
        "GET",
        "/readyz",
        "Readiness: Kafka, Postgres and the registry answer (503 as problem+json naming them)",
        ok={"200": "Ready"},
        errors=("503",),
        operation_id="readyz",
    ),
    Operation("GET", "/metrics", "Prometheus metrics", operation_id="metrics"),
    Operation("GET", service_health.PATH, service_health.SUMMARY, operation_id="health"),
    Operation("GET", "/openapi.json", "This document", operation_id="openapi"),
]
