"""Property tests of the contract: whatever arrives, parsing ends in an event or a ContractError,
and an error never repeats a secret it was given."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hopcast_shared.contract import EVENT_TYPES, ContractError, Envelope, parse_event
from hopcast_shared.contract.examples import example_data, example_event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
type_names = st.sampled_from(sorted(EVENT_TYPES))
PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_or_contract_error(raw: bytes) -> None:
    try:
        envelope, data = parse_event(raw)
    except ContractError as exc:
        assert exc.kind in {"decode", "envelope", "unknown_type", "data"}
        assert str(exc)
    else:
        assert isinstance(envelope, Envelope) and data is not None


@PROFILE
@given(st.binary(max_size=2000))
def test_junk_bytes_only_ever_raise_contract_error(raw: bytes) -> None:
    _parse_or_contract_error(raw)


@PROFILE
@given(json_values)
def test_any_json_only_ever_raises_contract_error(value: Any) -> None:
    _parse_or_contract_error(json.dumps(value).encode())


@PROFILE
@given(type_names, st.data())
def test_a_field_replaced_by_anything_parses_or_raises_contract_error(type_name: str, data: st.DataObject) -> None:
    document = json.loads(example_event(type_name).to_json())
    target = data.draw(st.sampled_from(["envelope", "data"]))
    fields = document if target == "envelope" else document["data"]
    field = data.draw(st.sampled_from(sorted(fields)))
    fields[field] = data.draw(json_values)
    _parse_or_contract_error(json.dumps(document).encode())


def _json_mode(model: Any, document: Any) -> Any:
    """The model validated by pydantic's JSON mode, or the ValidationError."""
    try:
        return model.model_validate_json(json.dumps(document))
    except ValidationError as exc:
        return exc


@PROFILE
@given(type_names, st.data())
def test_parsing_agrees_with_pydantic_json_mode(type_name: str, data: st.DataObject) -> None:
    """parse_event validates from Python objects in one pass; what it accepts, and how it reads
    it, is what `model_validate_json` (strict JSON mode) gives for the same bytes."""
    document = json.loads(example_event(type_name).to_json())
    target = data.draw(st.sampled_from(["envelope", "data"]))
    fields = document if target == "envelope" else document["data"]
    fields[data.draw(st.sampled_from(sorted(fields)))] = data.draw(json_values)
    envelope = _json_mode(Envelope, document)
    expected = (
        envelope
        if isinstance(envelope, ValidationError)
        else _json_mode(EVENT_TYPES[type_name].model, document["data"])
    )
    try:
        _, parsed = parse_event(json.dumps(document).encode())
    except ContractError as exc:
        # Valid by itself, refused only for naming another organization than the envelope, or
        # for a `type` replaced by a string that names no event of the contract.
        assert (
            isinstance(expected, ValidationError)
            or "data.organization_id" in str(exc)
            or (exc.kind == "unknown_type" and document["type"] != type_name)
        ), exc
    else:
        assert parsed == expected


@PROFILE
@given(type_names, st.data())
def test_round_trip_with_unknown_extra_fields(type_name: str, data: st.DataObject) -> None:
    extra = data.draw(st.dictionaries(st.text(min_size=1, max_size=10).map(lambda s: "x_" + s), json_values))
    event = example_event(type_name)
    document = json.loads(event.to_json())
    document["data"].update(extra)
    envelope, parsed = parse_event(json.dumps(document).encode())
    assert parsed == parse_event(event.to_json())[1]
    assert envelope.id == event.id


def _token_error(token: str) -> ContractError:
    document = json.loads(example_event("SocialAccountConnected").to_json())
    document["data"] = example_data("SocialAccountConnected", access_token=token, refresh_token=token)
    try:
        parse_event(json.dumps(document).encode())
    except ContractError as exc:
        return exc
    raise AssertionError("a value without the ciphertext's colons was accepted as a token")


@PROFILE
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters=":"), min_size=1, max_size=200))
def test_the_error_for_a_plaintext_token_does_not_depend_on_it(token: str) -> None:
    """The message is the same whatever the token was, so it cannot carry any of it."""
    reference = _token_error("placeholder")
    error = _token_error(token)
    assert error.kind == "data"
    assert (str(error), repr(error), error.problems) == (str(reference), repr(reference), reference.problems)
