"""What a long first-time set-up step is doing, on stderr, as it does it: resolving Kafka's jars
from Maven Central (minutes, the first time), the first PostgreSQL initdb. A terminal gets one
line that updates in place; a log or a pipe gets a line every few seconds and the last one."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

Say = Callable[[str], None]


def say(message: str, stream: TextIO | None = None) -> None:
    """One line of progress on stderr (not stdout: `hopcast stack env` output stays parseable)."""
    print(f"hopcast: {message}", file=stream or sys.stderr, flush=True)


def maven_downloads(
    lines: Iterable[str], tell: Say, *, every_s: float = 5.0, clock: Callable[[], float] = time.monotonic
) -> Iterator[str]:
    """Pass Maven's output through, telling how many artifacts it has downloaded so far (its
    `Downloaded from <repo>:` lines) at most every `every_s` seconds, and once at the end."""
    downloaded = 0
    last = clock()
    for line in lines:
        if line.startswith("Downloaded from "):
            downloaded += 1
            if clock() - last >= every_s:
                tell(f"resolving Kafka's jars from Maven Central: {downloaded} files downloaded so far")
                last = clock()
        yield line
    tell(f"resolved Kafka's jars: {downloaded} files downloaded")
