"""Executors stop their workers: on an interrupted driver (abort) and when the driver dies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from taskscout.transfer.executors import InProcessExecutor, LocalExecutor


def test_abort_terminates_a_job_in_flight_instead_of_waiting_for_it():
    ex = LocalExecutor(1, 1)
    fut = ex.pool.submit(time.sleep, 60)  # a stand-in for a long training run
    for _ in range(100):  # until the worker has taken it
        if fut.running():
            break
        time.sleep(0.1)
    t0 = time.perf_counter()
    ex.close(abort=True)
    assert time.perf_counter() - t0 < 20
    assert fut.done() and fut.exception() is not None  # lost, not finished


def test_with_block_aborts_on_an_exception_and_waits_otherwise():
    with pytest.raises(KeyboardInterrupt), LocalExecutor(1, 1) as ex:
        fut = ex.pool.submit(time.sleep, 60)
        time.sleep(1.0)
        t0 = time.perf_counter()
        raise KeyboardInterrupt
    assert time.perf_counter() - t0 < 20 and fut.done()
    with LocalExecutor(1, 1) as ex:
        fut = ex.pool.submit(sum, [1, 2, 3])
    assert fut.result() == 6
    with InProcessExecutor() as inproc:
        assert inproc.capacity == 1


def _state(pid: int) -> str | None:
    """The process's state letter from /proc (None: gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_worker_ends_itself_when_its_driver_is_killed():
    worker = textwrap.dedent("""
        import sys, time
        from taskscout.transfer.executors import watch_parent
        watch_parent(int(sys.argv[1]), interval_s=0.1)  # the driver's pid, as LocalExecutor
        print("watching", flush=True)
        time.sleep(60)
    """)
    driver = textwrap.dedent(f"""
        import os, subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", {worker!r}, str(os.getpid())])
        print(p.pid, flush=True)
        time.sleep(60)
    """)
    mid = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True)
    pid = int(mid.stdout.readline())
    assert mid.stdout.readline().strip() == "watching"  # the worker shares the pipe
    assert _state(pid) not in (None, "Z")
    mid.kill()  # SIGKILL: no cleanup runs in the driver
    mid.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _state(pid) not in (None, "Z"):
        time.sleep(0.1)
    assert _state(pid) in (None, "Z"), "the orphaned worker kept running"
