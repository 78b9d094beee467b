-- How many events make up a command's outcome (the envelope's outcome_events): the API takes
-- an outcome as decided only once cardinality(event_ids) reaches it. 0 for older events.
alter table command_outcomes add column if not exists outcome_events integer not null default 0;
