-- Read models of the walking skeleton, and the checkpoints that make projections exactly-once.

create table if not exists projection_checkpoints (
    projection  text    not null,
    topic       text    not null,
    partition   integer not null,
    next_offset bigint  not null,
    updated_at  timestamptz not null default now(),
    primary key (projection, topic, partition)
);

create table if not exists tenants (
    tenant_id     text primary key,
    display_name  text        not null,
    labels        jsonb       not null default '{}',
    status        text        not null,
    version       bigint      not null,
    created_at    timestamptz not null,
    updated_at    timestamptz not null,
    last_event_id text        not null
);

-- The outcome of every command the deciders handled: what `GET /v1/commands/{id}` and
-- `Prefer: wait` read.
create table if not exists command_outcomes (
    command_id        text primary key,
    command_type      text,
    tenant_id         text        not null,
    aggregate_type    text        not null,
    aggregate_id      text        not null,
    status            text        not null check (status in ('accepted', 'rejected')),
    code              text,
    reason            text,
    field             text,
    aggregate_version bigint      not null,
    event_ids         text[]      not null default '{}',
    topic             text        not null,
    partition         integer     not null,
    "offset"          bigint      not null,
    decided_at        timestamptz not null
);
