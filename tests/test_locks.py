"""file_lock (flock): exclusive across processes and threads, released when its
holder is killed, and the lock file is never written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tasks.core.locks import file_lock

ROOT = Path(__file__).resolve().parent.parent

HOLD = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tasks.core.locks import file_lock
with file_lock(Path(sys.argv[2])):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_killed_holder_releases_the_lock(tmp_path):
    path = tmp_path / "locks" / "AAL.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ROOT), str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        got = threading.Event()

        def take() -> None:
            with file_lock(path):
                got.set()

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        assert not got.wait(0.5)  # the child holds it
        os.kill(holder.pid, signal.SIGKILL)  # no clean-up runs: the kernel drops the flock
        assert got.wait(60)
        waiter.join(60)
    finally:
        holder.kill()
        holder.wait()
    assert path.exists() and path.stat().st_size == 0  # created, never written, kept


def test_threads_of_one_process_exclude_each_other(tmp_path):
    path = tmp_path / "x.lock"
    inside, most = [0], [0]
    guard = threading.Lock()

    def work() -> None:
        for _ in range(20):
            with file_lock(path):
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert most[0] == 1 and inside[0] == 0
