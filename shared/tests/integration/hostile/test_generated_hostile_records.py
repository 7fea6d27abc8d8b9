"""No record stops a partition, generated: thousands of hostile records (hypothesis) through the
kernel's consumer as the services run it (FastStream's KafkaBroker, batches, lanes) on the real
broker and database, with good events interleaved on the same partitions.

Every record must be applied or dead-lettered within 10 s, every good event applied (once), and
no record handed to the consumer more than `handler_max_attempts` times. The test service
(hopcast_stack.hostile) records what it applied in a table, so "applied" is a row and not a guess;
types that do not travel on upstream.events are dead-lettered (`wrong_topic`), so no record can be
silently ignored either.

The run prints its seed; `HOPCAST_HOSTILE_SEED=<seed>` replays the same records.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from hopcast_shared.contract import EVENT_TYPES, MAX_EVENT_BYTES
from hopcast_shared.contract.examples import EXAMPLES, example_event
from hopcast_shared.settings import KafkaSettings
from hopcast_stack.hostile import (
    GOOD_ORGS,
    MAX_ATTEMPTS,
    STRANGER_ORGS,
    TRACEPARENT,
    WITHIN_S,
    DeadLetters,
    Sent,
    candidate_ids,
    encode,
    envelope_value,
    nested,
    produce,
    raw_json,
    running_service,
    settle,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


GENERATED = 2_000
GOOD_EVERY = 5  # a good event after every fifth hostile record, on its partition
SEED_ENV = "HOPCAST_HOSTILE_SEED"
TEST_FILE = "shared/tests/integration/hostile/test_generated_hostile_records.py"
GOOD_TYPES = ("OrganizationCreated", "MaterialSubmitted", "CreditsGranted", "ScheduleTriggerRequested")

# Valid RFC 3339 that overflows datetime once converted to UTC, and other edge times.
EXTREME_TIMES = (
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999999+00:00",
    "0001-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:60Z",
    "2027-02-30T07:00:00Z",
    "2027-03-14T24:00:00Z",
    "2027-03-14T07:00:00+24:00",
    "2027-03-14T07:00:00-00:00",
    "2027-03-14t07:00:00z",
    "2027-03-14T07:00:00.1234567891234Z",
    "+12027-03-14T07:00:00Z",
)
ODD_TEXT = st.lists(
    st.sampled_from(["\x00", "\ud800", "\udfff", "\ufeff", "\u202e", "\u2028", "\x1b", '"', "\\", "é", "\U0001f600"])
    | st.text(max_size=6),
    max_size=8,
).map("".join)
HUGE_NUMBER = st.one_of(
    st.integers(min_value=-(2**256), max_value=2**256),
    st.sampled_from([2**63, 2**63 - 1, -(2**63) - 1, 2**64, 10**20]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1e400", "-1e400", "1" * 4400, "-0", "1E+2", "0.0000000000000000000001", "123456789" * 60]).map(
        raw_json
    ),
)
DEEP = st.integers(min_value=1, max_value=3_000).map(lambda depth: raw_json(nested(depth)))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | ODD_TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(ODD_TEXT, children, max_size=3),
    max_leaves=8,
)
HOSTILE = st.one_of(st.sampled_from(EXTREME_TIMES), ODD_TEXT, HUGE_NUMBER, DEEP, JSON)
HEADER_NAMES = st.one_of(
    st.sampled_from(["traceparent", "tracestate", "content-type", "ce_id", "ce_type", "x-hopcast-replayed-from"]),
    st.text(st.characters(codec="utf-8"), max_size=12),
)
HEADER_VALUES = st.one_of(
    st.none(),
    st.binary(max_size=60),
    st.sampled_from(
        [
            TRACEPARENT.encode(),
            (TRACEPARENT + "\x00").encode(),
            TRACEPARENT.replace("4bf9", "\x00\x00\x00\x00").encode(),
            b"\xff\xfe\x00",
            b"\xc3\x28",
            "é".encode("latin-1"),
        ]
    ),
)
HEADERS = st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=4)

# Time fields of each type's data: the example's values that read as RFC 3339.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T")
TIME_FIELDS = {
    name: [k for k, v in EXAMPLES[name].items() if isinstance(v, str) and _RFC3339.match(v)] for name in EXAMPLES
}


@dataclass(frozen=True)
class Hostile:
    """A generated record, its event id (when it has one) given when the run is laid out."""

    label: str
    render: Callable[[uuid.UUID], bytes | None]
    key: bytes | None
    headers: list[tuple[str, bytes | None]]


@st.composite
def hostile_records(draw: st.DrawFn) -> Hostile:
    """Raw bytes or a null value, any JSON, or a contract example with one thing broken (an
    envelope attribute or a data field replaced by a hostile value, a field dropped, the type
    changed); any key; any headers."""
    org = draw(st.sampled_from(GOOD_ORGS + STRANGER_ORGS))
    # Mostly the envelope's own organization, so that what is checked after the key is reached too.
    key = draw(
        st.sampled_from(["own", "own", "own", "own", "good", "none", "bytes", "upper"]).flatmap(
            lambda which: {
                "own": st.just(str(org).encode()),
                "good": st.sampled_from([str(o).encode() for o in GOOD_ORGS]),
                "none": st.none(),
                "bytes": st.binary(max_size=40),
                "upper": st.just(str(org).upper().encode()),
            }[which]
        )
    )
    headers = draw(HEADERS)
    how = draw(st.sampled_from(["attribute", "data", "time", "type", "drop", "extra", "json", "bytes"]))
    ascii_only = draw(st.booleans())
    if how == "bytes":
        raw = draw(st.binary(max_size=300) | st.none())
        if raw is None:  # aiokafka sends no record without a key and a value
            return Hostile("null", lambda _: None, key if key is not None else b"", headers)
        return Hostile("bytes", lambda _: raw, key, headers)
    if how == "json":
        document = draw(JSON | DEEP)
        return Hostile("json", lambda _: encode(document, ascii_only=ascii_only), key, headers)

    type_name = draw(st.sampled_from(sorted(EVENT_TYPES)))
    mutate: Callable[[dict[str, Any], uuid.UUID], None]
    if how == "attribute":
        name = draw(
            st.sampled_from(["id", "time", "type", "source", "specversion", "organizationid", "data", "correlationid"])
        )
        hostile = draw(id_variants() if name == "id" else HOSTILE)

        def mutate(value: dict[str, Any], event_id: uuid.UUID) -> None:
            value[name] = hostile(event_id) if callable(hostile) else hostile

    elif how in ("data", "time", "drop"):
        fields = TIME_FIELDS[type_name] if how == "time" and TIME_FIELDS[type_name] else sorted(EXAMPLES[type_name])
        name = draw(st.sampled_from(fields))
        hostile = draw(st.sampled_from(EXTREME_TIMES) if how == "time" else HOSTILE)

        def mutate(value: dict[str, Any], event_id: uuid.UUID) -> None:
            if how == "drop":
                value["data"].pop(name, None)
            else:
                value["data"][name] = hostile

    elif how == "type":
        new_type = draw(
            st.sampled_from(sorted(EVENT_TYPES)).map(lambda t: t + "\x00")
            | st.sampled_from(["", "x" * 101, "Nope.v2", "OrganizationCreated ", "\ud800"])
            | ODD_TEXT
        )

        def mutate(value: dict[str, Any], event_id: uuid.UUID) -> None:
            value["type"] = new_type

    else:  # an unknown field: ignored by the contract, the event stays valid
        extra = draw(HOSTILE)

        def mutate(value: dict[str, Any], event_id: uuid.UUID) -> None:
            value["data"]["x_unknown"] = extra

    def render(event_id: uuid.UUID) -> bytes:
        value = envelope_value(type_name, org, event_id)
        mutate(value, event_id)
        return encode(value, ascii_only=ascii_only)

    return Hostile(f"{how}:{type_name}", render, key, headers)


def id_variants() -> st.SearchStrategy[Any]:
    """Another spelling of the event's own id (so no two records share one), or no id at all."""
    spellings: list[Callable[[uuid.UUID], Any]] = [
        lambda i: str(i).upper(),
        lambda i: "{" + str(i) + "}",
        lambda i: i.hex,
        lambda i: f"urn:uuid:{i}",
        lambda i: str(i) + "\x00",
        lambda i: i.int,
    ]
    return st.sampled_from(spellings) | HOSTILE.filter(lambda v: not isinstance(v, str) or len(v) != 36)


def generate(seed: int, count: int) -> list[Hostile]:
    """`count` hostile records, the same for the same seed (and hypothesis version)."""
    found: list[Hostile] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(hostile_records())
    def collect(record: Hostile) -> None:
        found.append(record)

    collect()
    return found


def near_the_limit(seed: int) -> list[Hostile]:
    """Records just under the broker's 1 MB maximum message size, whose dead letters are larger."""
    rng = random.Random(seed)
    org = GOOD_ORGS[0]
    key = str(org).encode()
    size = MAX_EVENT_BYTES - 2_000 - rng.randrange(20_000)
    blob = b"\xff" + rng.randbytes(size)
    quotes = ('"\\' * (size // 2)).encode()

    def big_envelope(event_id: uuid.UUID) -> bytes:
        value = envelope_value("MaterialSubmitted", org, event_id)
        value["data"]["body"] = "\u00e9" * (size // 2 - 400)
        return encode(value, ascii_only=False)

    def big_unknown_field(event_id: uuid.UUID) -> bytes:
        value = envelope_value("OrganizationCreated", org, event_id)
        value["data"]["x_padding"] = "\x00" * (size // 6 - 100)
        return encode(value, ascii_only=True)

    return [
        Hostile("near 1 MB:bytes", lambda _: blob, key, []),
        Hostile("near 1 MB:text of quotes", lambda _: quotes, key, [("traceparent", TRACEPARENT.encode())]),
        Hostile("near 1 MB:data too long", big_envelope, key, []),
        Hostile("near 1 MB:NULs in an unknown field", big_unknown_field, key, []),
    ]


def good_event(rng: random.Random, n: int) -> Sent:
    org = GOOD_ORGS[n % len(GOOD_ORGS)]
    event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    type_name = GOOD_TYPES[n % len(GOOD_TYPES)]
    event = example_event(type_name, organization_id=org, event_id=event_id, time=datetime.now(UTC))
    headers: list[tuple[str, bytes | None]] = [("content-type", b"application/cloudevents+json")]
    if n % 3 == 0:
        headers.append(("traceparent", TRACEPARENT.encode()))
    return Sent(f"good:{type_name}", event.to_json(), str(org).encode(), headers, event_id, good=True)


def lay_out(seed: int, hostiles: Sequence[Hostile], partitions: int) -> list[Sent]:
    """The run in send order: the hostile records round-robin over the partitions, a good event
    after every GOOD_EVERY-th on the same partition."""
    rng = random.Random(seed)
    run: list[Sent] = []
    goods = 0
    for i, hostile in enumerate(hostiles):
        event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        record = Sent(hostile.label, hostile.render(event_id), hostile.key, hostile.headers, event_id)
        record.partition = i % partitions
        run.append(record)
        if i % GOOD_EVERY == GOOD_EVERY - 1:
            good = good_event(rng, goods)
            good.partition = record.partition
            run.append(good)
            goods += 1
    for record in run:
        record.ids = candidate_ids(record)
    return run


def seed_of_this_run() -> int:
    return int(os.environ.get(SEED_ENV) or random.SystemRandom().getrandbits(32))


async def test_generated_hostile_records_are_each_applied_or_dead_lettered_within_10_s(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    seed = seed_of_this_run()
    replay = f"{SEED_ENV}={seed} .venv/bin/pytest {TEST_FILE} -k generated -s"
    print(f"\nhostile-input seed {seed}; replay with: {replay}")
    started = time.perf_counter()
    hostiles = generate(seed, GENERATED) + near_the_limit(seed)
    run = lay_out(seed, hostiles, kafka.partitions)
    generated_s = time.perf_counter() - started
    assert sum(not r.good for r in run) >= GENERATED

    async with running_service(kafka, database_url, tmp_path) as service, DeadLetters(kafka) as letters:
        sent = time.perf_counter()
        await produce(kafka, run)
        outcomes = await settle(service, letters, run)
        settled_s = time.perf_counter() - sent
        deliveries = service.consumer.deliveries
        calls = dict(service.calls)

    def delivered(r: Sent) -> int:
        return deliveries[(service.topic, r.partition, r.offset)]

    results = {id(r): outcomes.of(r) for r in run}
    summary = {
        "seed": seed,
        "records": len(run),
        "hostile": sum(not r.good for r in run),
        "good": sum(r.good for r in run),
        "generate_s": round(generated_s, 1),
        "produce_and_settle_s": round(settled_s, 1),
        "outcomes": Counter(str(o[0]) if o else "neither" for o in results.values()),
        "dead_letter_kinds": Counter(letter.get("error_kind") for letter in letters.by_source.values()),
        "by_shape": Counter(f"{r.label.split(':')[0]}:{o[0] if (o := results[id(r)]) else 'neither'}" for r in run),
        "max_latency_s": round(max((o[1] - r.produced_at for r in run if (o := results[id(r)])), default=0), 2),
        "max_deliveries": max(deliveries.values(), default=0),
        "events_called_again": sum(n > 1 for n in calls.values()),
        "max_handler_calls": max(calls.values(), default=0),
        "largest_dead_letter": max(letters.sizes.values(), default=0),
    }
    print(json.dumps(summary, indent=1, default=str))

    # Every record applied or dead-lettered, within WITHIN_S of being produced.
    unaccounted = [r.describe(delivered(r)) for r in run if results[id(r)] is None]
    assert not unaccounted, (
        f"seed {seed} ({replay}): {len(unaccounted)} records neither applied nor dead-lettered (0 deliveries: "
        "the record never reached the kernel's consumer, FastStream or aiokafka stopped before it): "
        + json.dumps(unaccounted[:15], indent=1)
    )
    late = [
        {**r.describe(delivered(r)), "after_s": round(o[1] - r.produced_at, 2)}
        for r in run
        if (o := results[id(r)]) and o[1] - r.produced_at > WITHIN_S
    ]
    assert not late, f"seed {seed} ({replay}): handled later than {WITHIN_S} s: " + json.dumps(late[:15], indent=1)
    # Every good event applied, once.
    goods = [r for r in run if r.good]
    wrong = [
        (r.label, str(r.event_id), results[id(r)], len(outcomes.applied.get(str(r.event_id), [])))
        for r in goods
        if (results[id(r)] or ("",))[0] != "applied" or len(outcomes.applied[str(r.event_id)]) != 1
    ]
    assert not wrong, f"seed {seed}: good events not applied exactly once: {wrong[:15]}"
    # Nothing handed to the consumer, nor to a handler, more often than the attempts allow (a
    # handler may be called once in its batch's transaction, then up to the attempts alone).
    redelivered = [r.describe(delivered(r)) for r in run if delivered(r) > MAX_ATTEMPTS]
    assert not redelivered, f"seed {seed}: records delivered more than {MAX_ATTEMPTS} times: " + json.dumps(
        redelivered[:15], indent=1
    )
    retried = {event_id: n for event_id, n in calls.items() if n > MAX_ATTEMPTS + 1}
    assert not retried, f"seed {seed}: events handled more than {MAX_ATTEMPTS + 1} times: {retried}"
