"""What this folder's contract tests share (test modules cannot import each other under
--import-mode=importlib): `message`, a message as a producer might send it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from hopcast_shared.contract.examples import example_event


def message(type_name: str, data: dict[str, Any], **envelope: Any) -> bytes:
    """An example event of the type as JSON bytes, its data replaced (valid or not) and these
    envelope attributes changed."""
    document = json.loads(example_event(type_name).to_json())
    document["data"] = data
    document.update(envelope)
    return json.dumps(document).encode()


@pytest.fixture(name="message")
def message_fixture() -> Callable[..., bytes]:
    return message
