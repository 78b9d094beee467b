"""The two keyed stages on the running stack (decision 56): one tenant's tasks are decided on
many partitions of aion.tasks, its admission on one partition of aion.commands; and a stack
whose task stage never heard of a tenant learns it from the bootstrap's backfill."""

from __future__ import annotations

import time

import httpx
from confluent_kafka import Producer, TopicPartition

from aion.settings import Settings
from schemas.codec import Codec
from schemas.topics import COMMANDS, TASKS, producer_config
from streams.fact_backfill import backfill, fact_message
from streams.plan import fact_key
from tests.stack.kafka_reading import reader
from tests.stack.test_kernel_runs import agent, example
from tests.stack.test_orchestration import deploy, new_tenant, submit

WAIT = {"Prefer": "wait=20"}


def partitions_of(settings: Settings, topic: str, key: str, record: str) -> list[int]:
    """The partition of every record ``record`` keyed ``key`` on ``topic``, read to its end."""
    codec = Codec(settings.registry)
    consumer = reader(settings)
    found = []
    try:
        listed = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p))[1] for p in listed}
        consumer.assign([TopicPartition(topic, p, 0) for p in listed])
        done: set[int] = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 60
        while len(done) < len(ends) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            if message.offset() + 1 >= ends[message.partition()]:
                done.add(message.partition())
            if message.key() == key.encode() or message.key().startswith(f"{key}/".encode()):
                name, _ = codec.decode(topic, message.value())
                if name == record:
                    found.append(message.partition())
        return found
    finally:
        consumer.close()


def wait_until_all_succeeded(api: httpx.Client, tenant: str, count: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        listed = api.get(f"/v1/tenants/{tenant}/tasks", params={"limit": 100}).json()
        statuses = [task["status"] for task in listed["items"]]
        if statuses.count("succeeded") == count:
            return
        time.sleep(0.5)
    raise AssertionError(f"not every task succeeded: {statuses}")


def test_one_tenants_tasks_spread_over_partitions_and_its_admission_is_one(
    api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant(api, max_concurrent_tasks=8)
    deployed = agent(api, tenant, "echo", example("echo"), quotas={"max_concurrency": 8})
    assert deployed.status_code == 201, deployed.text
    count = 24
    for n in range(count):
        assert submit(api, tenant, f"t-{n}").status_code in (201, 202)
    wait_until_all_succeeded(api, tenant, count)
    decided_on = partitions_of(settings, TASKS, tenant, "aion.task.SubmitTask")
    assert len(decided_on) == count and len(set(decided_on)) >= 3, decided_on
    admitted_on = partitions_of(settings, COMMANDS, tenant, "aion.admission.AdmitTask")
    assert len(admitted_on) == count and len(set(admitted_on)) == 1, admitted_on
    settled_on = partitions_of(settings, COMMANDS, tenant, "aion.admission.SettleTask")
    assert len(settled_on) == count and set(settled_on) == set(admitted_on)


def forget_tenant_fact(settings: Settings, tenant: str) -> None:
    """What a stack from before the task stage looks like to it: no fact of this tenant."""
    codec = Codec(settings.registry)
    producer = Producer(producer_config(settings.kafka))
    key = fact_key("tenant", tenant)
    for partition in range(settings.topic_partitions):
        value = {**fact_message(key, {}, partition), "summary": None}
        data = codec.encode(TASKS, "aion.facts.ReplicateFact", value)
        producer.produce(TASKS, key=key.encode(), value=data, partition=partition)
    assert producer.flush(30) == 0


def test_a_task_stage_missing_a_tenants_facts_learns_them_from_the_backfill(
    api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant(api)
    deploy(api, tenant)
    forget_tenant_fact(settings, tenant)
    refused = submit(api, tenant, "before")
    assert refused.status_code == 404, refused.text
    assert f"tenant {tenant} does not exist" in refused.json()["detail"]
    assert backfill(settings, settings.topic_partitions) >= 2  # this tenant and its agent
    accepted = submit(api, tenant, "after")
    assert accepted.status_code == 201, accepted.text
