"""A `taskscout transfer` process killed with SIGKILL mid-matrix resumes without loss or
duplicates."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

TASKS = "qnli,boolq,sms_spam,snli"  # 4 x 3 = 12 pairs


def _count(db_path, sql) -> int:
    if not db_path.exists():
        return 0
    try:
        con = sqlite3.connect(db_path, timeout=5)
        try:
            return con.execute(sql).fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # table not there yet
        return 0


@pytest.mark.slow  # kills and restarts a child process: seconds of process start-up
def test_sigkill_mid_matrix_then_restart_completes_every_pair_once(tiny_backbone, tmp_path):
    store = tmp_path / "runs"
    cmd = [
        sys.executable, "-m", "taskscout.cli", "transfer",
        "--targets", TASKS, "--method", "prompt", "--seeds", "0",
        "--store", str(store), "--backbone", str(tiny_backbone),
        "--max-train", "96", "--max-dev", "24", "--epochs", "2", "--early-epochs", "1",
        "--lr", "0.01", "--max-len", "64", "--threads-per-worker", "1",
    ]  # fmt: skip
    env = {**os.environ, "TASKSCOUT_DATA_DIR": ""}
    env.pop("TASKSCOUT_DATA_DIR")
    db_path = store / "store.sqlite"
    done_sql = "SELECT count(*) FROM transfers WHERE status = 'complete'"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 240
        while _count(db_path, done_sql) < 2:
            assert proc.poll() is None, "the matrix ended before it could be killed"
            assert time.monotonic() < deadline, "no transfer completed in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    at_kill = _count(db_path, done_sql)
    assert 2 <= at_kill < 12, "killed mid-matrix"
    assert _count(db_path, "SELECT count(*) FROM runs WHERE status = 'complete'") == 4

    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "reused from the store: 4 tune runs" in rerun.stderr
    con = sqlite3.connect(db_path)
    rows = con.execute("SELECT source_task, target, seed, status FROM transfers").fetchall()
    assert len(rows) == 12 and {r[3] for r in rows} == {"complete"}
    assert len({r[:3] for r in rows}) == 12  # every pair exactly once
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 4
    # the second process ran only what the first had not committed
    assert f"0 tune runs, {12 - at_kill} transfers" in rerun.stderr
