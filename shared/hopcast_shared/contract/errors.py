"""Why an event was refused: `ContractError`, with a message fit for logs and dead letters.

The message names fields and problems, never values: events carry OAuth token
ciphertexts, user content and, by mistake, possibly plaintext secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

ErrorKind = Literal["decode", "envelope", "key_mismatch", "unknown_type", "wrong_topic", "data"]

# pydantic messages that quote a piece of the input are replaced by these.
_SAFE_MESSAGES: dict[str, str] = {
    "uuid_parsing": "expected a UUID string",
    "uuid_type": "expected a UUID string",
    "uuid_version": "expected a UUID string",
    "datetime_parsing": "expected an RFC 3339 date-time with an offset",
    "datetime_from_date_parsing": "expected an RFC 3339 date-time with an offset",
    "datetime_type": "expected an RFC 3339 date-time string",
    "timezone_aware": "expected a date-time with an offset (naive times are refused)",
    "missing": "required field is missing",
    "json_invalid": "not valid JSON",
    "json_type": "not valid JSON",
    "model_type": "expected a JSON object",
    "model_attributes_type": "expected a JSON object",
    "dict_type": "expected a JSON object",
}


@dataclass(frozen=True)
class FieldProblem:
    """One problem: where (`data.platforms[1]`, or `` for the whole value) and what."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}" if self.field else self.problem


def _location(loc: tuple[int | str, ...], prefix: str) -> str:
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else str(part)
    return text


def field_problems(exc: ValidationError, *, prefix: str = "") -> tuple[FieldProblem, ...]:
    """The problems of a pydantic error, without the input values pydantic would show."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        message = _SAFE_MESSAGES.get(err["type"], err["msg"])
        problems.append(FieldProblem(_location(tuple(err["loc"]), prefix), message))
    return tuple(problems)


class ContractError(ValueError):
    """An event that breaks the contract; goes to the dead-letter topic as is.

    kind: `decode` (not a UTF-8 JSON object, or too large), `envelope` (CloudEvents
    attributes missing or wrong), `unknown_type` (a type the contract does not know),
    `wrong_topic` (a type that does not travel on the topic it was read from), `data` (the
    type's data invalid). event_id and event_type are set when they could be read.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        event_id: str | None = None,
        event_type: str | None = None,
        problems: tuple[FieldProblem, ...] = (),
    ) -> None:
        self.kind: ErrorKind = kind
        self.message = message
        self.event_id = event_id
        self.event_type = event_type
        self.problems = problems
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return f"{self.message}: " + "; ".join(str(p) for p in self.problems)

    def __repr__(self) -> str:
        return f"ContractError(kind={self.kind!r}, event_type={self.event_type!r}, message={str(self)!r})"
