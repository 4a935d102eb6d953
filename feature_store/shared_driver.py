"""A Spark driver that the tasks of a DAG run share, instead of one spark-submit each.

A long-lived PySpark driver (``jobs/shared_driver.py``) listens on a Unix socket; each task
sends it a job of ``jobs/`` with its arguments, streams back what the job prints, and gets
its exit code. Jobs run one at a time; the driver stops when its last holder releases it.
Protocol, one JSON object per line: ``{"job": name, "argv": [...]}`` is answered by
``{"line": text}`` per line of output, then ``{"exit": code}``; control requests
(``acquire``, ``release``, ``ping``, ``stop``) are answered at once, even while a job runs.
Why, and the details: docs/airflow.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

SERVER_SCRIPT = Path(__file__).resolve().parent.parent / "jobs" / "shared_driver.py"
START_TIMEOUT_S = 300.0
DEFAULT_IDLE_SECONDS = 3600.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SharedDriverError(RuntimeError):
    """The shared driver could not be started or reached."""


def socket_path(state_dir: str | os.PathLike[str]) -> Path:
    """The driver's socket for a state folder: under the temporary folder, because a Unix
    socket's path must stay under ~100 bytes and a state folder's may not."""
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"marquee-driver-{digest}.sock"


def log_path(state_dir: str | os.PathLike[str]) -> Path:
    """The driver's own log: its start, and one line per job with its exit code and time."""
    path = Path(state_dir) / "shared-driver.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# --- client -------------------------------------------------------------------------------


def _connect(path: Path, timeout: float | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def _exchange(path: Path, request: dict[str, Any], timeout: float | None = None) -> Iterator[dict]:
    with _connect(path, timeout) as sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps(request).encode() + b"\n")
        stream.flush()
        for raw in stream:
            yield json.loads(raw)


def is_listening(path: Path) -> bool:
    """Whether a driver answers on ``path`` (a stale socket file does not)."""
    try:
        return any("exit" in reply for reply in _exchange(path, {"ping": True}, timeout=5))
    except (OSError, ValueError):
        return False


def run_job(path: Path, job: str, argv: Sequence[str], on_line: Callable[[str], None]) -> int:
    """Run ``jobs/<job>.py argv`` on the driver at ``path``; ``on_line`` hears each line
    it prints. Returns the job's exit code."""
    try:
        for reply in _exchange(path, {"job": job, "argv": list(argv)}):
            if "line" in reply:
                on_line(reply["line"])
            elif "exit" in reply:
                return int(reply["exit"])
    except FileNotFoundError as exc:
        raise SharedDriverError(
            f"no shared Spark driver at {path}: the DAG run's start_spark_driver task starts "
            "one (or set spark.task_driver=spark-submit)"
        ) from exc
    except OSError as exc:
        raise SharedDriverError(f"the shared Spark driver at {path} failed: {exc}") from exc
    raise SharedDriverError(
        f"the shared Spark driver at {path} ended during {job} without an exit code "
        "(it may have run out of memory; see its log)"
    )


def _request(path: Path, request: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
    """A control request's answer (answered at once, even while a job runs)."""
    for reply in _exchange(path, request, timeout=timeout):
        if "exit" in reply:
            return reply
    raise SharedDriverError(f"no answer from the shared Spark driver at {path}")


def stop(path: Path) -> None:
    """Stop the driver at ``path`` once its running job ends, whoever holds it."""
    with contextlib.suppress(OSError, ValueError, SharedDriverError):
        _request(path, {"stop": True}, timeout=60)
        _wait_until_gone(path)


def release(path: Path, holder: str) -> None:
    """``holder`` is done with the driver; the driver stops when no one holds it, and
    then this returns once it no longer listens."""
    try:
        reply = _request(path, {"release": holder})
    except (OSError, ValueError, SharedDriverError):
        return  # gone already
    if reply.get("stopping"):
        _wait_until_gone(path)


def _acquire(path: Path, holder: str) -> bool:
    """Hold the driver at ``path`` for ``holder``; False when none takes holders (none
    listens, or the one listening is stopping)."""
    try:
        return _request(path, {"acquire": holder})["exit"] == 0
    except (OSError, ValueError, SharedDriverError):
        return False


@dataclasses.dataclass(frozen=True)
class Started:
    """A driver listening on ``socket``, held for ``holder`` until it releases it."""

    socket: Path
    holder: str
    log_file: Path


def start(
    state_dir: str | os.PathLike[str],
    args: Sequence[str],
    *,
    holder: str,
    env: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> Started:
    """The driver of ``state_dir``, held for ``holder`` (release it when done): the one
    listening already, or a new one started with ``args`` (``--config``, ``--set``,
    ``--master``) once its Spark session is up. A driver stops when its last holder
    releases it, so two DAG runs that overlap share one and the later one's jobs are not
    cut off by the earlier one's teardown."""
    path = socket_path(state_dir)
    log_file = log_path(state_dir)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time: one driver per socket
        if not _acquire(path, holder):
            _wait_until_gone(path)  # a driver whose last holder just left
            _spawn(path, args, log_file, env, timeout)
            if not _acquire(path, holder):
                raise SharedDriverError(f"the shared Spark driver at {path} refused {holder}")
    return Started(path, holder, log_file)


def _wait_until_gone(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while is_listening(path):
        if time.monotonic() > deadline:
            raise SharedDriverError(f"the shared Spark driver at {path} did not stop")
        time.sleep(0.5)


def _spawn(
    path: Path, args: Sequence[str], log_file: Path, env: dict[str, str] | None, timeout: float
) -> None:
    command = [sys.executable, str(SERVER_SCRIPT), "--socket", str(path), *args]
    with open(log_file, "ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # outlives the task that started it
        )
    deadline = time.monotonic() + timeout
    while not is_listening(path):
        if process.poll() is not None:
            raise SharedDriverError(
                f"the shared Spark driver exited with code {process.returncode} before it "
                f"listened; its log {log_file} ends:\n{_tail(log_file)}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise SharedDriverError(f"the shared Spark driver did not start in {timeout:.0f} s")
        time.sleep(0.5)
    log.info("shared Spark driver %s listening on %s", process.pid, path)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- server -------------------------------------------------------------------------------


class _JobOutput:
    """A text stream whose writes go, line by line, to the client of the running job (and
    to the driver's own log between jobs). sys.stdout, sys.stderr and the root logging
    handler all write here, so a job's prints and logs reach its task."""

    def __init__(self, idle: TextIO) -> None:
        self.idle = idle
        self.send: Callable[[str], None] | None = None
        self.pending = ""

    def write(self, text: str) -> int:
        if self.send is None:
            return self.idle.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.send(line)
        return len(text)

    def flush(self) -> None:
        if self.send is None:
            self.idle.flush()
        elif self.pending:
            self.send(self.pending)
            self.pending = ""

    def isatty(self) -> bool:
        return False

    @contextlib.contextmanager
    def to(self, send: Callable[[str], None]) -> Iterator[None]:
        self.send, self.pending = send, ""
        try:
            yield
        finally:
            self.flush()
            self.send = None


class _ThreadJobOutput(_JobOutput):
    """A job's output in a process that goes on with other work while the job runs: for
    the job, sys.stdout and sys.stderr are swapped for streams that pass only the job's
    thread's writes to its client (the other threads' go where they went before), and the
    root logger gets a handler for that thread's records."""

    def __init__(self) -> None:
        super().__init__(sys.__stderr__)
        self.job_thread: int | None = None

    def write(self, text: str) -> int:
        if threading.get_ident() != self.job_thread:
            return self.idle.write(text)
        return super().write(text)

    @contextlib.contextmanager
    def to(self, send: Callable[[str], None]) -> Iterator[None]:
        job_thread = threading.get_ident()
        saved = sys.stdout, sys.stderr
        out, err = _ThreadRoute(self, saved[0]), _ThreadRoute(self, saved[1])
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(lambda record: record.thread == job_thread)
        root = logging.getLogger()
        self.job_thread = job_thread
        sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
        root.addHandler(handler)
        try:
            with super().to(send):
                yield
        finally:
            root.removeHandler(handler)
            sys.stdout, sys.stderr = saved
            self.job_thread = None


class _ThreadRoute:
    """sys.stdout or sys.stderr while an in-process job runs: the job's thread writes to
    the job's output, every other thread to the stream that was there before."""

    def __init__(self, job: _ThreadJobOutput, other: TextIO) -> None:
        self.job, self.other = job, other

    def write(self, text: str) -> int:
        if threading.get_ident() == self.job.job_thread:
            return self.job.write(text)
        return self.other.write(text)

    def flush(self) -> None:
        self.other.flush()

    def isatty(self) -> bool:
        return False


def serve(
    path: Path,
    run: Callable[[str, list[str]], int],
    *,
    after_job: Callable[[], None] = lambda: None,
    idle_seconds: float = DEFAULT_IDLE_SECONDS,
) -> None:
    """Answer requests on ``path`` until the last holder releases the driver, a stop
    request, or ``idle_seconds`` without a request (a run whose teardown never ran must
    not leave a JVM behind for good): ``run(job, argv)`` runs a job and returns its exit
    code; its output goes to the requesting client. Jobs run one at a time; control
    requests are answered at once, each connection on its own thread."""
    output = _JobOutput(sys.__stderr__)
    sys.stdout = sys.stderr = output  # type: ignore[assignment]
    handler = logging.StreamHandler(output)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    _serve_loop(path, _ServerState(output, run, after_job, sys.__stderr__), idle_seconds)


@contextlib.contextmanager
def serving_in_thread(
    path: Path,
    run: Callable[[str, list[str]], int],
    *,
    after_job: Callable[[], None],
    notes: TextIO,
) -> Iterator[None]:
    """Serve on ``path`` from a thread of this process while the block runs, so that jobs
    run on this process's Spark session, warm from what it did before (``marquee demo``'s
    generation and backfill). Only the job's own thread's prints and log records go to its
    client; the process's other output stays where it was. The driver's notes (jobs and
    their exit codes) go to ``notes``. Holders and stopping work as in `serve`."""
    state = _ServerState(_ThreadJobOutput(), run, after_job, notes)
    thread = threading.Thread(
        target=_serve_loop, args=(path, state, DEFAULT_IDLE_SECONDS), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not is_listening(path):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SharedDriverError(f"the in-process Spark driver did not listen on {path}")
        time.sleep(0.05)
    try:
        yield
    finally:
        state.stopping.set()
        thread.join()


def _serve_loop(path: Path, state: _ServerState, idle_seconds: float) -> None:
    path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        os.chmod(path, 0o600)  # connecting needs write access: the owner's jobs only
        own = path.stat().st_ino
        server.listen(16)
        server.settimeout(0.5)  # to see a stop decided on another thread
        try:
            while not state.stopping.is_set() and not state.idle_for(idle_seconds):
                with contextlib.suppress(TimeoutError):
                    conn, _ = server.accept()
                    conn.settimeout(None)
                    state.last_request = time.monotonic()
                    threading.Thread(target=state.answer, args=(conn,), daemon=True).start()
        finally:
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_ino == own:  # not a newer driver's socket
                    path.unlink()
    with state.job_lock:  # the running job, if any, ends first
        pass


class _ServerState:
    """The holders, the one-job-at-a-time lock and the stop flag of a serving driver."""

    def __init__(self, output: _JobOutput, run, after_job, notes: TextIO) -> None:
        self.output, self.run, self.after_job, self.notes = output, run, after_job, notes
        self.holders: set[str] = set()
        self.state_lock, self.job_lock = threading.Lock(), threading.Lock()
        self.stopping = threading.Event()
        self.last_request = time.monotonic()

    def idle_for(self, seconds: float) -> bool:
        idle = time.monotonic() - self.last_request > seconds and not self.job_lock.locked()
        if idle:
            self._note(f"no request for {seconds:.0f} s: stopping")
        return idle

    def answer(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:

            def send(message: dict[str, Any]) -> None:
                stream.write(json.dumps(message).encode() + b"\n")
                stream.flush()

            try:
                request = json.loads(stream.readline() or b"{}")
            except ValueError:
                request = {}
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                if "job" in request:
                    self._job(send, str(request["job"]), list(request.get("argv", [])))
                else:
                    code = self._control(request)
                    send({"exit": code, "stopping": self.stopping.is_set()})

    def _control(self, request: dict[str, Any]) -> int:
        with self.state_lock:
            if "acquire" in request:
                if self.stopping.is_set():
                    return 1
                self.holders.add(str(request["acquire"]))
            elif "release" in request:
                self.holders.discard(str(request["release"]))
                if not self.holders:
                    self._note("no holder left: stopping")
                    self.stopping.set()
            elif request.get("stop"):
                self._note("asked to stop")
                self.stopping.set()
            return 0

    def _job(self, send, job: str, argv: list[str]) -> None:
        with self.job_lock:
            started, code = time.perf_counter(), 1
            try:
                code = _run_one(self.output, send, self.run, job, argv)
                send({"exit": code})
            finally:
                self.after_job()
                self._note(f"{job} exit={code} {time.perf_counter() - started:.1f}s")

    def _note(self, text: str) -> None:
        print(f"shared driver: {text}", file=self.notes, flush=True)


def _run_one(output: _JobOutput, send, run, job: str, argv: list[str]) -> int:
    """The job's exit code; an exception it raised is printed and is exit code 1."""
    with output.to(lambda line: send({"line": line})):
        try:
            return run(job, argv)
        except SystemExit as exc:  # argparse errors, sys.exit in a job
            if isinstance(exc.code, int) or exc.code is None:
                return exc.code or 0
            print(exc.code, file=output)
            return 1
        except Exception:
            traceback.print_exc(file=output)
            return 1
