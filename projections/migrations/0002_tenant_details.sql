-- Tenants gain their limits and suspension reason; their members get a table.

alter table tenants add column if not exists limits jsonb not null default '{}';
alter table tenants add column if not exists suspension_reason text;

create table if not exists tenant_users (
    tenant_id    text        not null references tenants (tenant_id),
    user_id      text        not null,
    display_name text        not null,
    roles        text[]      not null,
    added_at     timestamptz not null,
    primary key (tenant_id, user_id)
);
