"""The JDK and the jars a local Kafka broker runs on: Java 17 or newer found and checked, and the
broker's jars resolved once from Maven Central with Maven (kafka/pom.xml), shared by every
broker of the checkout and resolved again when the pom changes."""

from __future__ import annotations

import base64
import collections
import hashlib
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from hopcast_stack import procs, progress
from hopcast_stack.errors import StackError

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).parent / "kafka"
POM = PACKAGE_DIR / "pom.xml"

JAVA_MISSING = "Kafka needs a Java 17+ runtime: install OpenJDK 17 (apt-get install openjdk-17-jre-headless)"
MAVEN_MISSING = (
    "Kafka's jars are resolved from Maven Central with Maven, which is not installed: "
    "install it (apt-get install maven)"
)
MIN_JAVA = 17


def java_executable() -> str:
    """The `java` to run Kafka with (JAVA_HOME first, then PATH), checked to be 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else None
    java = candidate if candidate and os.access(candidate, os.X_OK) else shutil.which("java")
    if java is None:
        raise StackError(JAVA_MISSING)
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"{JAVA_MISSING} ({java} -version failed: {exc})") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0_392" is Java 8
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise StackError(f"{JAVA_MISSING} (found Java {major or 'of unknown version'} at {java})")
    return java


def pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def jars_ready(libs: Path) -> bool:
    """The jars of the current pom are there (the marker holds the hash of the pom they came from)."""
    marker = libs / ".pom-sha256"
    return marker.is_file() and marker.read_text().strip() == pom_digest() and any(libs.glob("kafka_2.13-*.jar"))


def resolve_jars(libs: Path) -> Path:
    """Resolve the broker's jars into `libs` with Maven, once; a changed pom resolves them again."""
    if jars_ready(libs):
        return libs
    with procs.file_lock(libs.parent / ".libs.lock"):
        if jars_ready(libs):  # another process did it while we waited
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError(MAVEN_MISSING)
        work = libs.parent / f".resolve-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        (work / "libs").mkdir(parents=True)
        # Maven runs on a copy of the pom: the installed package may be read-only.
        shutil.copyfile(POM, work / "pom.xml")
        started = time.monotonic()
        progress.say(f"resolving Kafka's jars from Maven Central into {libs} (the first time only; a few minutes)")
        returncode, tail = _run_maven(
            [
                mvn,
                "-B",
                "-f",
                str(work / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={work / 'libs'}",
                "-DincludeScope=runtime",
            ]
        )
        if returncode != 0 or not any((work / "libs").glob("kafka_2.13-*.jar")):
            output = "\n".join(tail)
            shutil.rmtree(work, ignore_errors=True)
            raise StackError(f"resolving Kafka's jars with Maven failed (exit {returncode}):\n{output}")
        (work / "libs" / ".pom-sha256").write_text(pom_digest() + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        (work / "libs").replace(libs)
        shutil.rmtree(work, ignore_errors=True)
        log.info("resolved %d jars in %.1fs", len(list(libs.glob("*.jar"))), time.monotonic() - started)
    return libs


def _run_maven(command: list[str], *, timeout_s: float = 900) -> tuple[int, list[str]]:
    """Run Maven, telling its downloads as they come (`progress.maven_downloads`); its exit
    code and its last 40 lines."""
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as maven:
        timer = threading.Timer(timeout_s, maven.kill)
        timer.start()
        try:
            assert maven.stdout is not None
            for line in progress.maven_downloads((raw.rstrip("\n") for raw in maven.stdout), progress.say):
                tail.append(line)
        finally:
            timer.cancel()
    return maven.returncode, list(tail)


def kafka_version(libs: Path) -> str | None:
    jar = next(libs.glob("kafka_2.13-*.jar"), None)
    return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar") if jar else None


def new_cluster_id() -> str:
    """A Kafka cluster id, as `kafka-storage.sh random-uuid` makes it (URL-safe base64 of 16 random
    bytes, unpadded), without starting a JVM. Kafka avoids ids starting with '-' (they read as flags)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
