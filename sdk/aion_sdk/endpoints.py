"""Which client method serves each endpoint of ``/openapi.json``.

A unit test compares this table with the document the API generates and checks that both
clients have every method named here, so that a route added to the API without its SDK method
fails the suite.
"""

from __future__ import annotations

T = "/v1/tenants/{tenant}"

ENDPOINTS: dict[tuple[str, str], str] = {
    # Commands
    ("POST", "/v1/tenants"): "create_tenant",
    ("POST", T + "/suspend"): "suspend_tenant",
    ("POST", T + "/reinstate"): "reinstate_tenant",
    ("POST", T + "/users"): "add_user",
    ("PUT", T + "/users/{user}/roles"): "assign_roles",
    ("DELETE", T + "/users/{user}"): "remove_user",
    ("POST", T + "/models"): "register_model",
    ("POST", T + "/agents"): "deploy_agent",
    ("PUT", T + "/agents/{agent}"): "update_agent",
    ("POST", T + "/agents/{agent}/retire"): "retire_agent",
    ("PUT", T + "/policies/{policy}"): "put_policy",
    ("DELETE", T + "/policies/{policy}"): "delete_policy",
    ("POST", T + "/policies/{policy}/simulate"): "simulate_policy",
    ("POST", T + "/tasks"): "submit_task",
    ("POST", T + "/tasks/{task}/cancel"): "cancel_task",
    ("POST", T + "/tasks/batch"): "submit_tasks",
    ("POST", T + "/api-keys"): "create_api_key",
    ("DELETE", T + "/api-keys/{key}"): "revoke_api_key",
    ("POST", T + "/modules"): "upload_module",
    # Queries
    ("GET", "/v1/commands/{command_id}"): "get_command",
    ("GET", "/v1/tenants"): "list_tenants",
    ("GET", T): "get_tenant",
    ("GET", T + "/users"): "list_users",
    ("GET", T + "/modules/{digest}"): "get_module",
    ("GET", T + "/api-keys"): "list_api_keys",
    ("GET", T + "/models"): "list_models",
    ("GET", T + "/models/{model}"): "get_model",
    ("GET", T + "/agents"): "list_agents",
    ("GET", T + "/agents/{agent}"): "get_agent",
    ("GET", T + "/agents/{agent}/versions"): "list_agent_versions",
    ("GET", T + "/policies"): "list_policies",
    ("GET", T + "/policies/{policy}"): "get_policy",
    ("GET", T + "/tasks"): "list_tasks",
    ("GET", T + "/tasks/{task}"): "get_task",
    ("GET", T + "/tasks/{task}/status"): "get_task_status",
    ("GET", T + "/tasks/{task}/runs"): "list_runs",
    ("GET", T + "/tasks/{task}/artifacts"): "list_artifacts",
    ("GET", T + "/tasks/{task}/runs/{run}/artifacts/{artifact}"): "download_artifact",
    ("GET", T + "/tasks/{task}/events"): "task_events",
    ("GET", T + "/enforcements"): "list_enforcements",
    ("GET", T + "/audit"): "list_audit",
    ("GET", T + "/search"): "search",
    ("GET", T + "/counters"): "get_counters",
    # Sign-in and operations
    ("GET", "/auth/login"): "auth_login",
    ("GET", "/auth/callback"): "auth_callback",
    ("POST", "/auth/logout"): "auth_logout",
    ("GET", "/auth/session"): "auth_session",
    ("GET", "/healthz"): "healthz",
    ("GET", "/readyz"): "readyz",
    ("GET", "/health"): "health",
    ("GET", "/metrics"): "metrics",
    ("GET", "/openapi.json"): "openapi",
}

# Routes the API serves that its OpenAPI document does not list (none now; the console's pages
# are a Mount, not API routes).
UNDOCUMENTED: dict[tuple[str, str], str] = {}
