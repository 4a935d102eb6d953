"""A Spark driver that the tasks of a DAG run share, instead of one spark-submit each.

On small data most of a task's minute is a new JVM: starting it, loading Delta, and
compiling Spark's and Delta's code paths and the query plans again. A shared driver pays
that once per DAG run: a long-lived PySpark driver (``jobs/shared_driver.py``) listens on
a Unix socket; each task sends it a job of ``jobs/`` with its arguments, streams back
what the job prints, and gets its exit code. Jobs run one at a time, as the DAGs' one
task at a time on two cores. The DAG run's setup task starts it and its teardown task
stops it; a driver already listening (``marquee demo`` starts one for both of its DAG
runs) is used and left running. ``spark.task_driver: spark-submit`` keeps one
spark-submit per task, the shape for a cluster's scheduler.

Protocol, one JSON object per line: the client sends ``{"job": name, "argv": [...]}``,
``{"ping": true}`` or ``{"stop": true}``; the server answers ``{"line": text}`` for each
line of the job's output, then ``{"exit": code}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

SERVER_SCRIPT = Path(__file__).resolve().parent.parent / "jobs" / "shared_driver.py"
START_TIMEOUT_S = 300.0


class SharedDriverError(RuntimeError):
    """The shared driver could not be started or reached."""


def socket_path(state_dir: str | os.PathLike[str]) -> Path:
    """The driver's socket for a state folder: under the temporary folder, because a Unix
    socket's path must stay under ~100 bytes and a state folder's may not."""
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"marquee-driver-{digest}.sock"


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


def stop(path: Path) -> None:
    """Ask the driver at ``path`` to stop its Spark session and exit."""
    with contextlib.suppress(OSError, ValueError):
        for _ in _exchange(path, {"stop": True}, timeout=60):
            pass


@dataclasses.dataclass(frozen=True)
class Started:
    """A driver listening on ``socket``; ``owned``: this caller started it (and stops it)."""

    socket: Path
    owned: bool
    log_file: Path


def start(
    state_dir: str | os.PathLike[str],
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> Started:
    """The driver of ``state_dir``: the one listening already, or a new one started with
    ``args`` (``--config``, ``--set``, ``--master``), once its Spark session is up."""
    path = socket_path(state_dir)
    log_file = Path(state_dir) / "shared-driver.log"
    if is_listening(path):
        return Started(path, owned=False, log_file=log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
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
    return Started(path, owned=True, log_file=log_file)


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


def serve(
    path: Path,
    run: Callable[[str, list[str]], int],
    *,
    after_job: Callable[[], None] = lambda: None,
) -> None:
    """Answer requests on ``path`` one at a time until asked to stop: ``run(job, argv)``
    runs a job and returns its exit code; its output goes to the requesting client."""
    output = _JobOutput(sys.__stderr__)
    sys.stdout = sys.stderr = output  # type: ignore[assignment]
    handler = logging.StreamHandler(output)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(16)
        try:
            while _answer(server, output, run, after_job):
                pass
        finally:
            path.unlink(missing_ok=True)


def _answer(server: socket.socket, output: _JobOutput, run, after_job) -> bool:
    """One request; False when it asks the driver to stop."""
    conn, _ = server.accept()
    with conn, conn.makefile("rwb") as stream:

        def send(message: dict[str, Any]) -> None:
            stream.write(json.dumps(message).encode() + b"\n")
            stream.flush()

        try:
            request = json.loads(stream.readline() or b"{}")
        except ValueError:
            request = {}
        if "job" not in request:
            send({"exit": 0})
            return not request.get("stop")
        started, job, code = time.perf_counter(), str(request["job"]), 1
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            code = _run_one(output, send, run, job, list(request.get("argv", [])))
            send({"exit": code})
        after_job()
        seconds = time.perf_counter() - started
        print(f"shared driver: {job} exit={code} {seconds:.1f}s", file=output.idle, flush=True)
        return True


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
