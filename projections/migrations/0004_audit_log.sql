-- The audit log (decision 33): one row per event of every events topic and of aion.audit,
-- keyed by the event's Kafka position, so applying an event again changes nothing.

create table if not exists audit_log (
    topic       text        not null,
    partition   int         not null,
    "offset"    bigint      not null,
    tenant_id   text        not null,
    occurred_at timestamptz not null,
    actor       text        not null,
    kind        text        not null check (kind in
                    ('login', 'logout', 'command', 'policy_change', 'denial', 'enforcement')),
    action      text        not null,
    target      text,
    outcome     text        not null check (outcome in
                    ('ok', 'rejected', 'allow', 'deny', 'denied')),
    command_id  text,
    event_id    text        not null,
    detail      jsonb       not null default '{}',
    primary key (topic, partition, "offset")
);
-- Newest first, per tenant, with and without the actor and kind filters.
create index if not exists audit_log_by_time
    on audit_log (tenant_id, occurred_at, topic, partition, "offset");
create index if not exists audit_log_by_actor
    on audit_log (tenant_id, actor, occurred_at, topic, partition, "offset");
create index if not exists audit_log_by_kind
    on audit_log (tenant_id, kind, occurred_at, topic, partition, "offset");

-- Fill it with the whole history: the core projection reads its topics again from the start
-- (its other parts are idempotent, decision 29).
delete from projection_checkpoints where projection = 'core';
