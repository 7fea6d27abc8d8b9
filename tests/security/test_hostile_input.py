"""Hostile input mixed into a real flow: hand-made and generated (hypothesis) messages on the
topics the services consume. Each lands in the dead-letter topic of every service that reads it
with its reason (the contract's error kind), or is ignored as the contract says (a valid event
of a type a service does not handle); no consumer stops, and the good runs sent around them
still complete.

What a consumer does before any handler is decided by the contract alone, so the expectation is
computed from `parse_event` with the types each service handles; what a handler refuses
(another organization's ids) is written out case by case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hopcast_shared.contract import EVENT_TYPES, ContractError, parse_event
from hopcast_shared.contract.examples import example_event
from hopcast_shared.crypto import Keyring, account_transit_aad, owner_aad
from hopcast_shared.topics import CONTENT, UPSTREAM
from hopcast_stack.faults import consumed_topics, service_definition
from hopcast_stack.probe import World
from hopcast_stack.workload import Org

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

HANDLED = {name: frozenset(service_definition(name).handlers) for name in consumed_topics()}
READERS = {topic: [s for s, topics in consumed_topics().items() if topic in topics] for topic in (UPSTREAM, CONTENT)}
# A token that does not open for the event's organization and account (moved, tampered, of
# another key or in the stored form): the publisher's dead letter names it so.
NOT_FOR_ACCOUNT = {"publisher": "token_not_for_account"}


def contract_verdict(raw: bytes, service: str, topic: str = UPSTREAM, key: str | None = None) -> str | None:
    """What `service`'s consumer does with `raw` read from `topic` with `key` before any handler
    runs: the dead letter's kind, None when it ignores it, "handle" when a handler gets it."""
    if not raw:
        return "decode"
    try:
        envelope, _ = parse_event(raw, only=HANDLED[service], topic=topic, key=None if key is None else key.encode())
    except ContractError as exc:
        return exc.kind
    if envelope.type not in HANDLED[service]:
        return None if envelope.type in EVENT_TYPES else "unknown_type"
    return "handle"


@dataclass
class Case:
    name: str
    value: bytes
    key: str | None
    topic: str = UPSTREAM
    # What a handler does with it where the contract lets it through: service -> dead letter kind.
    refused_by: dict[str, str] = field(default_factory=dict)
    at: tuple[str, int, int] | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)

    def expected(self) -> dict[str, str]:
        """service -> dead letter kind, for every service that must dead-letter it."""
        out: dict[str, str] = {}
        for service in READERS[self.topic]:
            verdict = contract_verdict(self.value, service, self.topic, self.key)
            if verdict == "handle":
                if service in self.refused_by:
                    out[service] = self.refused_by[service]
            elif verdict is not None:
                out[service] = verdict
        return out


def envelope(org: str, type_name: str, **changes: Any) -> dict[str, Any]:
    event = example_event(type_name, organization_id=org, time=datetime.now(UTC), **changes)
    value: dict[str, Any] = json.loads(event.to_json())
    return value


def broken(org: str, type_name: str, valid: dict[str, Any], **data: Any) -> bytes:
    """A contract example made with `valid` changes, then given `data` the contract refuses."""
    value = envelope(org, type_name, **valid)
    value["data"].update(data)
    return encode(value)


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def hand_made(world: World, a: Org, b: Org, a_pending: str) -> list[Case]:
    """`a` is a live organization with a published run (`a_pending` its pending post), `b` another."""
    org = b.id
    keyring = world.services.keyring
    token = f"plain-hostile-{uuid.uuid4().hex}"
    world.plaintexts.append(token)
    target = str(uuid.uuid4())  # the account the ciphertexts below are sent for
    in_transit = account_transit_aad(org, target)
    sealed = keyring.encrypt(f"sealed-{uuid.uuid4().hex}", associated_data=in_transit)
    version, nonce, body = sealed.split(":")
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    other_key = Keyring.generate((int(version[1:]),)).encrypt("other key", associated_data=in_transit)
    other_account = keyring.encrypt("other account", associated_data=account_transit_aad(org, uuid.uuid4()))
    other_org = keyring.encrypt("other organization", associated_data=account_transit_aad(a.id, target))
    stored_form = keyring.encrypt("stored form", associated_data=owner_aad("social_account", target))

    def account(access_token: str) -> bytes:
        valid = {"social_account_id": target, "platform": "MASTODON", "handle": "@hostile"}
        return broken(org, "SocialAccountConnected", valid, access_token=access_token, refresh_token=None)

    no_id = envelope(org, "OrganizationCreated")
    del no_id["id"]
    bad_org = envelope(org, "BrandProfileCreated", brand_profile_id=str(uuid.uuid4()))
    bad_org["organizationid"] = "x'); DROP TABLE organizations; --"
    wrong_types = envelope(org, "ScheduleCreated", schedule_id=str(uuid.uuid4()), brand_profile_id=b.brand)
    wrong_types["data"]["times"] = 5
    wrong_types["data"]["days_of_week"] = "monday"
    unknown = envelope(org, "OrganizationCreated")
    unknown["type"] = "OrganizationObliterated.v9"
    past = envelope(org, "OrganizationCreated")
    past["time"] = "0001-01-01T00:00:00Z"
    future_sub = envelope(
        org,
        "SubscriptionActivated",
        subscription_id=str(uuid.uuid4()),
        plan="STARTER",
        credits_total=300,
        period_start="0001-01-01T00:00:00+00:00",
        period_end="9999-12-31T23:59:59+00:00",
    )
    lone_surrogate = envelope(org, "BrandProfileUpdated", brand_profile_id=b.brand)
    lone_surrogate["data"]["name"] = "\ud800 broken"
    # Each of these once stopped its partition in every service that read it (issue 14).
    after_9999 = envelope(org, "OrganizationCreated")
    after_9999["time"] = "9999-12-31T23:59:59-23:59"
    before_1 = envelope(org, "OrganizationCreated")
    before_1["time"] = "0001-01-01T00:00:00+01:00"
    overflowing_data = envelope(
        org,
        "SubscriptionActivated",
        subscription_id=str(uuid.uuid4()),
        plan="STARTER",
        credits_total=300,
    )
    overflowing_data["data"]["period_end"] = "9999-12-31T23:59:59-23:59"
    nul_type = envelope(org, "OrganizationCreated")
    nul_type["type"] = "Organization\x00Created"
    near_limit = envelope(org, "MaterialSubmitted", material_id=str(uuid.uuid4()), brand_profile_id=b.brand)
    near_limit["data"]["body"] = "\x01" * 165_000  # about 1 MB as JSON; its dead letter once grew to 6 MB
    not_its_key = envelope(org, "BrandProfileUpdated", brand_profile_id=b.brand)
    return [
        Case("time after 9999 in UTC", encode(after_9999), org),
        Case("time before year 1 in UTC", encode(before_1), org),
        Case("a data time after 9999 in UTC", encode(overflowing_data), org),
        Case("a type with NUL", encode(nul_type), org),
        Case(
            "an invalid event with NUL in traceparent",
            encode(wrong_types),
            org,
            headers=[("traceparent", b"00-\x00-\xff"), ("x-bytes", b"\xff\xfe\x00"), ("x-null", None)],
        ),
        Case("near the broker's 1 MB limit", encode(near_limit), org),
        Case("keyed to another organization", encode(not_its_key), a.id),
        Case("keyed to nothing", encode(not_its_key), None),
        Case("not JSON", b"\xff\xfe\x00 this is { not json", org),
        Case("JSON, not an object", b'["ScheduleTriggerRequested", 1, null]', org),
        Case("no key, empty value", b"", None),
        Case("envelope without id", encode(no_id), org),
        Case("organizationid is SQL", encode(bad_org), org),
        Case("wrong types", encode(wrong_types), org),
        Case("unknown type", encode(unknown), org),
        Case(
            "enormous body (900 kB)",
            broken(org, "MaterialSubmitted", {"brand_profile_id": b.brand}, body="x" * 900_000),
            org,
        ),
        Case("nested 100 000 deep", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, org),
        Case("time in year 1", encode(past), org),
        Case("subscription from year 1 to 9999", encode(future_sub), org),
        Case("negative credits", broken(org, "CreditsGranted", {}, amount=-500), org),
        Case("negative likes", broken(org, "EngagementReported", {}, likes=-1, impressions=-10), org),
        Case(
            "lone surrogate as raw bytes (not UTF-8)",
            encode(lone_surrogate),
            org,
        ),
        Case(
            "lone surrogate as a JSON escape",
            json.dumps(lone_surrogate).encode(),
            org,
            refused_by={"scheduler": "failed", "content": "failed", "publisher": "failed"},
        ),
        Case("plaintext token", account(token), org),
        Case("tampered ciphertext", account(f"{version}:{nonce}:{flipped}"), org, refused_by=NOT_FOR_ACCOUNT),
        Case("ciphertext under another key", account(other_key), org, refused_by=NOT_FOR_ACCOUNT),
        Case("ciphertext of another account", account(other_account), org, refused_by=NOT_FOR_ACCOUNT),
        Case("ciphertext of another organization", account(other_org), org, refused_by=NOT_FOR_ACCOUNT),
        Case("ciphertext in its stored form", account(stored_form), org, refused_by=NOT_FOR_ACCOUNT),
        # Another organization's ids.
        Case(
            "link another organization's account",
            encode(
                envelope(org, "BrandAccountLinked", brand_profile_id=b.brand, social_account_id=a.accounts["MASTODON"])
            ),
            org,
            refused_by={"publisher": "rejected"},
        ),
        Case(
            "trigger another organization's schedule",
            encode(envelope(org, "ScheduleTriggerRequested", schedule_id=a.schedule)),
            org,
            refused_by={"scheduler": "rejected"},
        ),
        Case(
            "material for another organization's brand",
            encode(
                envelope(
                    org, "MaterialSubmitted", material_id=str(uuid.uuid4()), brand_profile_id=a.brand, body="Not yours."
                )
            ),
            org,
            # The scheduler refuses it too: it would wake another organization's schedules.
            refused_by={"content": "rejected", "scheduler": "rejected"},
        ),
        Case(
            "approve another organization's draft",
            encode(envelope(org, "PendingPostApproved", pending_post_id=a_pending)),
            org,
            refused_by={"publisher": "rejected"},
        ),
        Case(
            "a draft naming another organization's pending post (a debit of another's post)",
            encode(
                envelope(
                    org,
                    "PendingPostCreated",
                    pending_post_id=a_pending,
                    run_id=str(uuid.uuid4()),
                    schedule_id=b.schedule,
                    brand_profile_id=b.brand,
                    platforms=["MASTODON"],
                )
            ),
            org,
            topic=CONTENT,
            # Billing keeps debits per organization (docs/contract.md): it debits `b` for its
            # own draft and leaves `a`'s debit alone (checked below); the publisher, which keeps
            # one pending post per id, dead-letters it.
            refused_by={"publisher": "rejected"},
        ),
    ]


def dlq_list(world: World, service: str) -> list[dict[str, Any]]:
    """`hopcast dlq list SERVICE --json` against the services' own Kafka and databases."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}, **world.services.env()}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "hopcast"), "dlq", "list", service, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


SQL_NAME = "Robert'); DROP TABLE brands; -- \t\x07\x1b[2J %s $1 \\N"
UNICODE_NAME = (
    "\u202eevil\u202c \U0001f468\u200d\U0001f469\u200d\U0001f467 Z\u0334\u0321\u031b\u0347algo \U00010348 \ufeff"
)


async def test_hand_made_hostile_input_is_dead_lettered_with_its_reason_and_good_runs_complete(world: World) -> None:
    a, b = await world.org(materials=12), await world.org()
    first, outcome = await world.run(a)
    assert outcome == "PUBLISHED"
    [draft] = world.events("PendingPostCreated", run_id=first)
    cases = hand_made(world, a, b, draft["data"]["pending_post_id"])
    # Strings that are odd but valid: stored as they are, nothing dead-lettered.
    odd_brands = {str(uuid.uuid4()): SQL_NAME, str(uuid.uuid4()): UNICODE_NAME}
    for brand, name in odd_brands.items():
        cases.append(
            Case(
                f"brand named {name[:12]!r}",
                encode(envelope(b.id, "BrandProfileCreated", brand_profile_id=brand, name=name)),
                b.id,
            )
        )

    runs = [first]
    for i, case in enumerate(cases):
        case.at = await world.send_raw(case.topic, case.value, key=case.key, headers=case.headers)
        if i % 6 == 5:  # a good run between the hostile messages, through the same partitions
            run, outcome = await world.run(a)
            assert outcome == "PUBLISHED", (case.name, outcome)
            runs.append(run)
    runs.append((await world.run(a))[0])
    await world.quiet()

    found: dict[tuple[str, int, int], dict[str, str]] = defaultdict(dict)
    for letter in world.recorder.dead_letters():
        src = letter.value["source"]
        name = src["topic"].removeprefix(world.services.kafka.topic_prefix)
        found[(name, src["partition"], src["offset"])][letter.value["consumer"]] = letter.value["error_kind"]
    table = {case.name: (case.expected(), found.get(case.at or ("", 0, 0), {})) for case in cases}
    wrong = {name: {"expected": e, "found": f} for name, (e, f) in table.items() if e != f}
    assert wrong == {}, json.dumps(wrong, indent=1)
    # `hopcast dlq list` shows every one of them, whatever its size, as each service keeps it.
    for service in READERS[UPSTREAM]:
        listed = {
            (
                x["source"]["topic"].removeprefix(world.services.kafka.topic_prefix),
                x["source"]["partition"],
                x["source"]["offset"],
            ): x
            for x in dlq_list(world, service)
        }
        for case in cases:
            if service in case.expected():
                assert case.at in listed, (service, case.name)
                assert listed[case.at]["value_size"] == len(case.value), (service, case.name)
    print(
        json.dumps(
            {
                "cases": len(cases),
                "dead_letters": Counter(f"{s}:{k}" for _, got in table.values() for s, k in got.items()),
            }
        )
    )
    # `a` was debited once for its pending post; `b`'s draft reusing the id was `b`'s own debit
    # (GENERATE and one platform), never a second debit of `a` nor a duplicate of `a`'s.
    pending = draft["data"]["pending_post_id"]
    debits = world.events("CreditsDebited", pending_post_id=pending)
    assert sorted(d["organizationid"] for d in debits) == sorted([a.id, b.id])
    assert [d["data"]["amount"] for d in debits if d["organizationid"] == b.id] == [2]
    assert world.events("CreditsDebitRejected", pending_post_id=pending) == []
    status, body = await world.services.get_json("billing", f"/organizations/{b.id}/credits", organization=b.id)
    assert (status, body["balance"]) == (200, 298)
    # Every dead letter carries a reason and the original's id where it had one.
    for letter in world.recorder.dead_letters():
        assert letter.value["error"] and letter.value["error_kind"]
    # No consumer stopped: every good run completed, each once, and the services are ready.
    assert all(len(world.recorder.completions()[run]) == 1 for run in runs)
    for process in world.services.processes:
        assert (await world.services.get_json(process.name, "/ready"))[0] == 200
    # The odd names were stored literally (parameters, never SQL text) by every service that keeps brands.
    for service in ("content", "publisher"):
        conn = await asyncpg.connect(world.services.database_urls[service])
        try:
            stored = {
                str(r["id"]): r["name"]
                for r in await conn.fetch("SELECT id, name FROM brands WHERE id = ANY($1::uuid[])", list(odd_brands))
            }
            assert stored == odd_brands, service
            assert await conn.fetchval("SELECT count(*) FROM brands") >= 3
        finally:
            await conn.close()


# --- generated -------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
INBOUND = sorted(t for t, spec in EVENT_TYPES.items() if UPSTREAM in spec.topics)


@st.composite
def hostile_message(draw: st.DrawFn, org: str) -> bytes:
    """A contract example with one thing broken: a data field or an envelope attribute replaced by
    any JSON, a field dropped, the type changed, or plain random bytes."""
    how = draw(st.sampled_from(["data", "drop", "envelope", "type", "bytes", "text"]))
    if how == "bytes":
        return draw(st.binary(max_size=200))
    if how == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    value = envelope(org, draw(st.sampled_from(INBOUND)))
    target = value["data"] if how in ("data", "drop") else value
    keys = sorted(target)
    if how == "type":
        value["type"] = draw(st.sampled_from([*INBOUND, "ScheduleDue", "", "x" * 101, "Nope.v2"]))
    elif keys:
        key = draw(st.sampled_from(keys))
        if how == "drop":
            del target[key]
        else:
            target[key] = draw(JSON)
    if draw(st.booleans()):  # ASCII JSON: odd characters, lone surrogates included, as \u escapes
        return json.dumps(value, ensure_ascii=True).encode()
    return encode(value)


def generated(org: str, count: int) -> list[bytes]:
    """`count` hostile messages, the same ones on every run (derandomized)."""
    found: list[bytes] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(hostile_message(org))
    def collect(message: bytes) -> None:
        found.append(message)

    collect()
    return found


async def test_generated_hostile_input_never_stops_a_consumer(world: World) -> None:
    a, b = await world.org(materials=8), await world.org()
    messages = generated(b.id, 80)
    at: list[tuple[bytes, tuple[str, int, int]]] = []
    runs = []
    for i, message in enumerate(messages):
        at.append((message, await world.send_raw(UPSTREAM, message, key=b.id)))
        if i % 20 == 19:
            run, outcome = await world.run(a)
            assert outcome == "PUBLISHED"
            runs.append(run)
    await world.quiet()

    found: dict[tuple[str, int, int], dict[str, str]] = defaultdict(dict)
    for letter in world.recorder.dead_letters():
        src = letter.value["source"]
        found[(src["topic"].removeprefix(world.services.kafka.topic_prefix), src["partition"], src["offset"])][
            letter.value["consumer"]
        ] = letter.value["error_kind"]
    wrong = []
    dead = 0
    for message, where in at:
        for service in READERS[UPSTREAM]:
            verdict = contract_verdict(message, service, UPSTREAM, b.id)
            got = found.get(where, {}).get(service)
            dead += got is not None
            # A handler may accept what the contract lets through, or refuse it (a token that
            # opens under none of the keys is `rejected`, one made for another account, or under
            # a key the service holds but for other data, `token_not_for_account`).
            refusals = (None, "rejected", "failed", "token_not_for_account")
            ok = got in refusals if verdict == "handle" else got == verdict
            if not ok:
                wrong.append((message[:120], service, verdict, got))
    assert wrong == []
    assert dead > 0
    kinds = Counter(kind for letters in found.values() for kind in letters.items())
    print(
        json.dumps(
            {
                "generated": len(messages),
                "dead_letters": dead,
                "by_service_and_kind": [[*k, n] for k, n in kinds.items()],
            }
        )
    )
    assert all(len(world.recorder.completions()[run]) == 1 for run in runs)
    for process in world.services.processes:
        assert (await world.services.get_json(process.name, "/ready"))[0] == 200
