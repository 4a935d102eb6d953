"""The shared driver's protocol: what a job prints and logs reaches its task line by line,
its exit code comes back whatever way it ends, and the driver goes on to the next job.
The server runs here with plain-Python jobs; the training DAG's end-to-end test
(tests/test_dags_training.py) runs real Spark jobs on jobs/shared_driver.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from feature_store import shared_driver

SERVER = textwrap.dedent(
    """
    import logging, sys, time
    from pathlib import Path
    from feature_store.shared_driver import serve

    calls = []

    def run(job, argv):
        calls.append(job)
        if job == "talk":
            print("first line")
            logging.getLogger("a.job").warning("a logged warning")
            sys.stderr.write("no newline at the end")
            return 0
        if job == "exit":
            sys.exit(int(argv[0]))
        if job == "crash":
            raise ValueError("the job broke")
        if job == "count":
            print(f"jobs so far: {len(calls)}")
            return 0
        if job == "block":  # until the test creates the file argv[0]
            while not Path(argv[0]).exists():
                time.sleep(0.05)
            return 0
        return 2

    serve(Path(sys.argv[1]), run, idle_seconds=float(sys.argv[2]))
    print("stopped", file=sys.__stderr__)
    """
)


def start_server(path, idle_seconds: float = 3600):
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(path), str(idle_seconds)],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not shared_driver.is_listening(path):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.1)
    return process


@pytest.fixture
def server(tmp_path):
    path = shared_driver.socket_path(tmp_path)
    process = start_server(path)
    yield path, process
    process.kill()
    process.wait()
    path.unlink(missing_ok=True)  # a killed server leaves its socket file in the temp folder


def test_a_driver_nobody_sends_anything_stops_by_itself(tmp_path):
    """A run whose teardown never ran (its worker killed) must not leave a JVM for good."""
    path = shared_driver.socket_path(tmp_path)
    process = start_server(path, idle_seconds=2)
    assert process.wait(timeout=60) == 0
    assert "no request for 2 s: stopping" in process.stderr.read()
    assert not path.exists()


def job(path, name: str, *argv: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = shared_driver.run_job(path, name, list(argv), lines.append)
    return code, lines


def test_a_jobs_prints_and_logs_reach_the_client_and_its_exit_code_comes_back(server):
    path, _ = server
    assert path.stat().st_mode & 0o077 == 0  # no other user may send it jobs
    code, lines = job(path, "talk")
    assert code == 0
    assert lines[0] == "first line"
    assert lines[1].endswith(" WARNING a.job: a logged warning")
    assert lines[2:] == ["no newline at the end"]
    assert job(path, "exit", "3") == (3, [])
    assert job(path, "exit", "0") == (0, [])


def test_a_job_that_raises_fails_with_its_traceback_and_the_driver_runs_the_next(server):
    path, _ = server
    code, lines = job(path, "crash")
    assert code == 1
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: the job broke"
    assert job(path, "count") == (0, ["jobs so far: 2"])


def test_stop_ends_the_driver_and_removes_its_socket(server):
    path, process = server
    shared_driver.stop(path)
    assert process.wait(timeout=30) == 0
    assert "stopped" in process.stderr.read()
    assert not path.exists() and not shared_driver.is_listening(path)
    with pytest.raises(shared_driver.SharedDriverError, match="no shared Spark driver at"):
        job(path, "count")


def test_the_driver_stops_when_its_last_holder_releases_it(server):
    path, process = server
    assert shared_driver._acquire(path, "daily/run-1")
    assert shared_driver._acquire(path, "training/run-1")  # overlapping runs share it
    shared_driver.release(path, "daily/run-1")
    assert job(path, "count") == (0, ["jobs so far: 1"])  # the training run goes on
    shared_driver.release(path, "training/run-1")
    assert process.wait(timeout=30) == 0
    assert not shared_driver.is_listening(path)


def test_control_requests_are_answered_while_a_job_runs(server, tmp_path):
    import threading

    path, _ = server
    go_on = tmp_path / "go-on"
    result: list = []
    running = threading.Thread(target=lambda: result.append(job(path, "block", str(go_on))))
    running.start()
    try:
        # another run's setup does not wait for the job: it holds the same driver
        assert shared_driver.is_listening(path)
        assert shared_driver._acquire(path, "training/run-2")
        assert result == []  # the job is still running
    finally:
        go_on.touch()
        running.join(timeout=30)
    assert result == [(0, [])]


def test_a_stale_socket_file_is_not_a_driver(tmp_path):
    import socket

    path = shared_driver.socket_path(tmp_path)
    with socket.socket(socket.AF_UNIX) as left_behind:  # bound, never listening
        left_behind.bind(str(path))
    try:
        assert path.exists() and not shared_driver.is_listening(path)
    finally:
        path.unlink()


def test_a_driver_that_cannot_start_says_why(tmp_path):
    with pytest.raises(shared_driver.SharedDriverError, match="exited with code 2") as failed:
        shared_driver.start(tmp_path, ["--no-such-flag"], holder="test")
    assert "unrecognized arguments: --no-such-flag" in str(failed.value)
    assert (tmp_path / "shared-driver.log").exists()


def test_socket_paths_are_short_and_differ_per_state_folder(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 8)
    assert len(str(shared_driver.socket_path(deep))) < 100
    assert shared_driver.socket_path(deep) != shared_driver.socket_path(tmp_path)
    assert shared_driver.socket_path(tmp_path) == shared_driver.socket_path(tmp_path / ".")


def test_a_driver_in_this_process_sends_only_the_jobs_own_output(tmp_path, capsys):
    """The demo serves its DAG runs' jobs from a thread of its own process: the job's
    prints and log records reach its task, while what the process's other threads print
    meanwhile stays on their own streams."""
    import logging
    import threading

    path = shared_driver.socket_path(tmp_path)
    started, go_on = threading.Event(), threading.Event()

    def run(job, argv):
        print(f"{job} says {argv[0]}")
        logging.getLogger("a.job").warning("logged by the job")
        started.set()
        go_on.wait(10)
        return 3

    notes = tmp_path / "notes.log"
    received: list[str] = []
    with (
        open(notes, "w") as out,
        shared_driver.serving_in_thread(path, run, after_job=lambda: None, notes=out),
    ):
        job = threading.Thread(
            target=lambda: received.append(
                shared_driver.run_job(path, "hello", ["hi"], received.append)
            )
        )
        job.start()
        assert started.wait(10)
        print("the main thread goes on")
        logging.getLogger("the.demo").warning("logged by the main thread")
        go_on.set()
        job.join(10)
    assert received[0] == "hello says hi"
    assert received[1].endswith("WARNING a.job: logged by the job")
    assert received[2:] == [3]
    assert "the main thread goes on" in capsys.readouterr().out
    assert not path.exists()
    assert notes.read_text().split()[:4] == ["shared", "driver:", "hello", "exit=3"]


def test_the_demo_shares_a_driver_that_already_listens_for_its_state_folder(tmp_path):
    """`marquee demo` hosts its runs' driver itself, unless another run's driver listens
    for the same state folder: that one is shared, not replaced."""
    from conftest import make_config

    from jobs.shared_driver import hosted_here

    path = shared_driver.socket_path(tmp_path)
    process = start_server(path)
    try:
        with hosted_here(make_config(tmp_path)):
            lines: list[str] = []
            assert shared_driver.run_job(path, "count", [], lines.append) == 0
        assert lines == ["jobs so far: 1"]  # the other process's driver ran it
        assert shared_driver.is_listening(path)
    finally:
        process.kill()
        process.wait()
        path.unlink(missing_ok=True)
