-- API keys as the API checks them: the secret's SHA-256, never the secret.
create table if not exists api_keys (
    tenant_id text not null,
    key_id text primary key,
    name text not null,
    roles text[] not null,
    secret_sha256 text not null,
    rate_per_s double precision,
    burst integer,
    expires_at timestamptz,
    status text not null,
    revoked_reason text,
    created_by text not null,
    version bigint not null,
    created_at timestamptz not null,
    updated_at timestamptz not null
);
create index if not exists api_keys_tenant on api_keys (tenant_id, key_id);
