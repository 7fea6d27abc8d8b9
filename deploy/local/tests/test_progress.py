"""Long first-time set-up steps say what they do while they do it (issue: the first `make run`
resolved Kafka's jars for minutes with nothing on the screen)."""

from __future__ import annotations

import io
import itertools

from hopcast_stack.progress import maven_downloads, say

MAVEN = [
    "[INFO] Scanning for projects...",
    "Downloading from central: https://repo.maven.apache.org/maven2/org/apache/kafka/kafka_2.13/4.4.0/kafka_2.13-4.4.0.pom",
    "Downloaded from central: https://repo.maven.apache.org/maven2/org/apache/kafka/kafka_2.13/4.4.0/kafka_2.13-4.4.0.pom",
    *[f"Downloaded from central: https://repo.maven.apache.org/maven2/x/{n}.jar (1 kB at 2 kB/s)" for n in range(9)],
    "[INFO] BUILD SUCCESS",
]


def test_maven_output_passes_through_and_the_downloads_are_told_as_they_come() -> None:
    told: list[str] = []
    ticks = itertools.count(0.0, 2.0)  # every line two seconds later
    seen = list(maven_downloads(MAVEN, told.append, every_s=5.0, clock=lambda: next(ticks)))

    assert seen == MAVEN
    assert told[-1] == "resolved Kafka's jars: 10 files downloaded"
    so_far = [t for t in told if t.endswith("so far")]
    assert len(so_far) >= 2 and so_far[0].startswith("resolving Kafka's jars from Maven Central: ")
    counts = [int(t.split(": ")[1].split()[0]) for t in so_far]
    assert counts == sorted(counts) and counts[-1] <= 10


def test_a_progress_line_goes_to_the_stream_it_is_given_and_names_hopcast() -> None:
    stream = io.StringIO()
    say("creating the PostgreSQL cluster in /tmp/x (the first time only)", stream)
    assert stream.getvalue() == "hopcast: creating the PostgreSQL cluster in /tmp/x (the first time only)\n"
