-- Read models of the domain: models, agents and their versions, policies, tasks with their runs
-- and artifacts, enforcement verdicts. Keys are per tenant, with the local id (a name or an id
-- without the "<tenant>/" prefix). `version` is the aggregate's version after the last event
-- applied: the guard that makes a duplicate or an older event a no-op.

create table if not exists models (
    tenant_id   text        not null,
    model_name  text        not null,
    provider    text        not null,
    kind        text        not null,
    parameters  jsonb       not null default '{}',
    description text        not null default '',
    status      text        not null check (status in ('registered')),
    version     bigint      not null,
    created_at  timestamptz not null,
    updated_at  timestamptz not null,
    primary key (tenant_id, model_name)
);
create index if not exists models_by_created on models (tenant_id, created_at, model_name);

create table if not exists agents (
    tenant_id      text        not null,
    agent_name     text        not null,
    status         text        not null check (status in ('deployed', 'retired')),
    agent_version  text        not null,
    manifest       jsonb       not null,
    description    text        not null default '',
    labels         jsonb       not null default '{}',
    version        bigint      not null,
    retired_reason text,
    created_at     timestamptz not null,
    updated_at     timestamptz not null,
    primary key (tenant_id, agent_name)
);
create index if not exists agents_by_created on agents (tenant_id, created_at, agent_name);
create index if not exists agents_by_status
    on agents (tenant_id, status, created_at, agent_name);

-- One row per AgentDeployed or AgentUpdated: every manifest an agent ever ran with.
create table if not exists agent_versions (
    tenant_id     text        not null,
    agent_name    text        not null,
    agent_version text        not null,
    manifest      jsonb       not null,
    module_digest text        not null,
    deployed_at   timestamptz not null,
    primary key (tenant_id, agent_name, agent_version)
);
create index if not exists agent_versions_by_deployed
    on agent_versions (tenant_id, agent_name, deployed_at);

create table if not exists policies (
    tenant_id      text        not null,
    policy_id      text        not null,
    cedar          text        not null,
    description    text        not null default '',
    status         text        not null check (status in ('active', 'deleted')),
    policy_version bigint      not null,
    version        bigint      not null,
    created_at     timestamptz not null,
    updated_at     timestamptz not null,
    primary key (tenant_id, policy_id)
);
create index if not exists policies_by_created on policies (tenant_id, created_at, policy_id);
create index if not exists policies_by_status
    on policies (tenant_id, status, created_at, policy_id);

-- `input` is the JSON text exactly as submitted (jsonb would reorder keys and refuses \u0000).
create table if not exists tasks (
    tenant_id      text        not null,
    task_id        text        not null,
    agent_name     text        not null,
    agent_version  text        not null,
    status         text        not null check (status in ('submitted', 'authorized', 'rejected',
                       'scheduled', 'running', 'retrying', 'succeeded', 'failed', 'timed_out',
                       'cancelled')),
    input          text        not null,
    input_bytes    bigint      not null,
    labels         jsonb       not null default '{}',
    deadline_ms    bigint,
    submitted_by   text,
    enforcement_id text,
    attempt        integer     not null default 0,
    run_id         text,
    output_digest  text,
    reason         text,
    version        bigint      not null,
    submitted_at   timestamptz not null,
    updated_at     timestamptz not null,
    finished_at    timestamptz,
    primary key (tenant_id, task_id)
);
create index if not exists tasks_by_submitted on tasks (tenant_id, submitted_at, task_id);
create index if not exists tasks_by_status on tasks (tenant_id, status, submitted_at, task_id);
create index if not exists tasks_by_agent on tasks (tenant_id, agent_name, submitted_at, task_id);

-- One row per attempt (TaskScheduled); its status follows the kernel's reports only.
create table if not exists runs (
    tenant_id        text        not null,
    task_id          text        not null,
    run_id           text        not null,
    attempt          integer     not null,
    status           text        not null check (status in ('scheduled', 'running',
                         'succeeded', 'failed')),
    worker           text,
    output_digest    text,
    output_bytes     bigint,
    fuel_used        bigint,
    duration_ms      bigint,
    failure_reason   text,
    failure_message  text,
    progress_percent double precision,
    progress_message text,
    scheduled_at     timestamptz not null,
    started_at       timestamptz,
    finished_at      timestamptz,
    primary key (tenant_id, task_id, run_id)
);
create index if not exists runs_by_status on runs (tenant_id, status, scheduled_at, run_id);

create table if not exists artifacts (
    tenant_id    text        not null,
    task_id      text        not null,
    run_id       text        not null,
    artifact_id  text        not null,
    digest       text        not null,
    size_bytes   bigint      not null,
    content_type text        not null,
    object_key   text        not null,
    stored_at    timestamptz not null,
    primary key (tenant_id, task_id, run_id, artifact_id)
);
create index if not exists artifacts_by_digest on artifacts (tenant_id, digest);

-- `subject_id` is the local id (agent name or task id), like the other tables' keys.
create table if not exists enforcements (
    tenant_id      text        not null,
    enforcement_id text        not null,
    subject_type   text        not null check (subject_type in ('agent', 'task')),
    subject_id     text        not null,
    action         text        not null,
    decision       text        not null check (decision in ('allow', 'deny')),
    policy_ids     text[]      not null default '{}',
    diagnostics    text[]      not null default '{}',
    request        jsonb,
    decided_at     timestamptz not null,
    primary key (tenant_id, enforcement_id)
);
create index if not exists enforcements_by_decided
    on enforcements (tenant_id, decided_at, enforcement_id);
create index if not exists enforcements_by_decision
    on enforcements (tenant_id, decision, decided_at, enforcement_id);
create index if not exists enforcements_by_subject
    on enforcements (tenant_id, subject_type, subject_id, decided_at);

-- The core projection now also builds these tables: replay it from the start of the events
-- topics so that they hold the whole history (its other parts are idempotent, decision 29).
delete from projection_checkpoints where projection = 'core';
