"""The CloudEvents Kafka protocol binding 1.0: Hopcast writes structured mode, reads both.

Structured mode (what every Hopcast producer writes): the value is the whole event as JSON,
the `content-type` header is `application/cloudevents+json`, and there is no `ce_` header:
standard clients (the official SDKs' `from_kafka`) take any `ce_` header to mean binary mode,
so a routing header by that prefix makes them misread every message.

Binary mode (what some upstream producers write): each attribute is a `ce_<name>` header
(UTF-8 text), `content-type` is the `datacontenttype`, and the value is the data alone.
`binary_document` puts such a message together into the JSON object of the structured form,
which the one envelope model then validates, so both modes get the same answers, the same
dead-letter kinds and the same inbox key.

Which mode a message is in follows the binding (section 3): a `content-type` starting with
`application/cloudevents` is structured whatever else the headers hold (so the records of
earlier Hopcast versions, which added `ce_type` and `ce_id` to structured values, still read
as they were written); otherwise any `ce_` header means binary; otherwise structured.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pydantic_core

from hopcast_shared.contract.envelope import DATA_CONTENT_TYPE, MAX_EVENT_BYTES
from hopcast_shared.contract.errors import ContractError, FieldProblem

CE_PREFIX = "ce_"
CONTENT_TYPE_HEADER = "content-type"
_STRUCTURED_MEDIA = b"application/cloudevents"
# CloudEvents attribute names: lower-case ASCII letters and digits (the spec asks for at most
# 20; a little room here). `data` is the value itself, never a header.
_ATTRIBUTE = re.compile(r"[a-z0-9]{1,40}")
_NOT_ATTRIBUTES = frozenset({"data", "data_base64"})

Headers = Sequence[tuple[str, bytes | None]]


def is_binary(headers: Headers | None) -> bool:
    """Whether a Kafka message is a binary-mode CloudEvent (see the module's note)."""
    if not headers:
        return False
    binary = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == CONTENT_TYPE_HEADER and value is not None and bytes(value).startswith(_STRUCTURED_MEDIA):
            return False
        binary = binary or lowered.startswith(CE_PREFIX)
    return binary


def binary_document(headers: Headers, value: bytes | None) -> dict[str, Any]:
    """The structured JSON object of a binary-mode message: its attributes from the `ce_`
    headers, `datacontenttype` from `content-type`, `data` from the value. Raises
    ContractError: `decode` (a header or the value is not UTF-8 JSON text, or too large),
    `envelope` (an attribute header misnamed, empty or given twice)."""
    document: dict[str, Any] = {}
    for name, raw in headers:
        lowered = name.lower()
        if lowered == CONTENT_TYPE_HEADER:
            attribute = "datacontenttype"
        elif lowered.startswith(CE_PREFIX):
            attribute = lowered.removeprefix(CE_PREFIX)
        else:
            continue  # trace context and any other header of the transport
        if not _ATTRIBUTE.fullmatch(attribute) or attribute in _NOT_ATTRIBUTES:
            raise _envelope_error("", "a ce_ header does not name a CloudEvents attribute")
        if attribute in document:
            raise _envelope_error(attribute, "given by more than one header")
        if raw is None:
            raise _envelope_error(attribute, "header has no value")
        try:
            document[attribute] = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ContractError("decode", f"binary-mode header for {attribute} is not UTF-8") from None
    media_type = str(document.get("datacontenttype", DATA_CONTENT_TYPE)).split(";", 1)[0].strip().lower()
    if media_type == DATA_CONTENT_TYPE:
        document["datacontenttype"] = DATA_CONTENT_TYPE  # parameters such as charset=utf-8 say nothing new
    document["data"] = _data(value)
    return document


def _data(value: bytes | None) -> Any:
    if value is None:
        raise ContractError("decode", "message value is null")
    if len(value) > MAX_EVENT_BYTES:
        raise ContractError("decode", f"message is {len(value)} bytes, more than {MAX_EVENT_BYTES}")
    try:
        return pydantic_core.from_json(value, allow_inf_nan=False)
    except ValueError:
        raise ContractError("decode", "message value is not UTF-8 JSON") from None


def _envelope_error(attribute: str, problem: str) -> ContractError:
    field = f"{CE_PREFIX}{attribute}" if attribute else ""
    return ContractError(
        "envelope", "CloudEvents binary-mode headers invalid", problems=(FieldProblem(field, problem),)
    )
