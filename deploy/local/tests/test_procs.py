"""Starting a process: how it exited is told from the child itself, and its pid file is kept
while it runs, whatever a concurrent check did to it."""

from __future__ import annotations

import sys
from pathlib import Path

from hopcast_stack import procs


def test_a_started_process_says_how_it_exited(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    failed = procs.spawn([sys.executable, "-c", "import sys; sys.exit(3)"], log=log)
    failed.wait(30)
    assert procs.exited(failed, running=False) == "exited with status 3"

    sleeper = procs.spawn([sys.executable, "-c", "import time; time.sleep(60)"], log=log)
    try:
        assert procs.exited(sleeper, running=False) is None  # the child, not a pid file, decides
    finally:
        sleeper.kill()
        sleeper.wait(30)
    assert procs.exited(sleeper, running=True) == "killed by SIGKILL"
    assert procs.exited(None, running=True) is None
    assert procs.exited(None, running=False) is not None


def test_a_running_childs_pid_file_is_written_again_when_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "run" / "x.pid"
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    child = procs.spawn(sleep, log=tmp_path / "x.log", pid_file=pid_file)
    try:
        pid_file.unlink()  # as a check that read the killed predecessor's pid would
        procs.keep_pid_file(pid_file, child)
        assert procs.read_pid(pid_file) == child.pid
        procs.write_pid(pid_file, 1)  # another pid: replaced too
        procs.keep_pid_file(pid_file, child)
        assert procs.read_pid(pid_file) == child.pid
    finally:
        child.kill()
        child.wait(30)
    pid_file.unlink()
    procs.keep_pid_file(pid_file, child)  # an exited child's is not written
    assert not pid_file.exists()
