"""A warm executor for jobflow-remote's local worker: jobs forked from a long-lived interpreter.

Why: jobflow-remote runs every job as ``jf -fe execution run RUN_DIR`` in a fresh interpreter that
imports jobflow-remote, jobflow, pymatgen and crystal_atomate first (3 to 6 s, more than a
replayed CRYSTAL job takes). Here the worker's ``execution_cmd`` is this file, run as a small
stdlib-only client (``python -I -S remote_exec.py RUN_DIR``: about 40 ms). It asks a server that
has imported all of that once to fork a child for the job; the child takes the client's
environment, working directory, umask and stdin/stdout/stderr (passed over a Unix socket with
``SCM_RIGHTS``, so ``queue.out``/``queue.err`` get the job's output) and runs jobflow-remote's own
``run_remote_job(RUN_DIR)``. The client waits and exits with the child's status, so the shell
scheduler sees the job run exactly as long as it runs.

* Cancelling: the child dies (with its process group, i.e. CRYSTAL) when the client's end of the
  connection closes, so killing the client kills the job; the client also gives up when the
  shell that started it is killed (jobflow-remote cancels a shell job with ``kill -9`` on it).
* One server per environment: servers are keyed by a hash of the Python executable, the server
  options and the environment (without variables a shell changes from job to job), so a changed
  exec config gets a fresh server; a server owns its socket through a lock file, and clients
  starting one take a second lock, so racing clients end up with one server.
* Lifetime: a server retires after ``--idle`` seconds without a job (default 600), when the
  process in the ``--owner`` pid file (the runner daemon) is gone, on SIGTERM, or when a module
  file it imported changed (new code needs a new interpreter); it finishes its running jobs first.
* Fallback: if no server can be reached or started, the client becomes
  ``run_remote_job(RUN_DIR)`` in a normal interpreter (slow but correct) and says so on stderr.

The client part imports only the standard library: it must start in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import sys
import time

__all__ = [
    "DEFAULT_IDLE",
    "EXEC_DIR_ENV",
    "exec_dir",
    "execution_command",
    "lock_holder",
    "running_servers",
    "server_key",
    "stop_servers",
]

#: Where the sockets, locks and logs of the servers live (default: a per-user folder in /tmp).
EXEC_DIR_ENV = "CRYSTAL_ATOMATE_EXEC_DIR"
#: Seconds a server waits for its next job before it retires.
DEFAULT_IDLE = 600.0
#: Variables a shell sets differently for every job; they do not make a different server.
VOLATILE_ENV = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
#: What a server imports before it takes jobs: everything a crystal_atomate job needs.
WARM_MODULES = (
    "jobflow_remote.jobs.run",
    "jobflow_remote.remote.data",
    "jobflow",
    "maggma.stores",
    "pymatgen.core",
    "crystal_atomate.jobs",
    "crystal_atomate.flows",
    "crystal_atomate.sets",
    "crystal_atomate.io",
    "crystal_atomate.schemas",
    "crystal_atomate.stores",
    "crystal_atomate.recovery",
    "crystal_atomate.run",
    "crystal_atomate.powerups",
)
#: Seconds a client waits for a server it started to take connections (it imports first).
START_TIMEOUT = 180.0
_MODULE = "crystal_atomate.engines.remote_exec"
_FALLBACK = (
    "import sys; from jobflow_remote.jobs.run import run_remote_job; run_remote_job(sys.argv[1])"
)
_LENGTH = struct.Struct("!I")
_STATUS = struct.Struct("!ci")
_STARTED, _EXITED, _RETIRED = b"R", b"X", b"S"
_ATTEMPTS = 3


# --------------------------------------------------------------------------- names and keys


def exec_dir() -> str:
    """Return the servers' folder: ``CRYSTAL_ATOMATE_EXEC_DIR``, else a per-user one in ``$TMPDIR``.

    The per-user folder is ``$TMPDIR/crystal_atomate-exec-UID``.
    """
    default = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"crystal_atomate-exec-{os.getuid()}")
    return os.environ.get(EXEC_DIR_ENV, default)


def server_key(environ: dict[str, str], options: list[str], python: str = sys.executable) -> str:
    """Name the server a client with this environment and options uses (a short hex digest)."""
    stable = sorted((k, v) for k, v in environ.items() if k not in VOLATILE_ENV)
    text = json.dumps([python, options, stable])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _paths(key: str) -> tuple[str, str, str, str]:
    """Socket, server lock, start lock and log file of the server ``key``."""
    base = os.path.join(exec_dir(), key)
    return f"{base}.sock", f"{base}.lock", f"{base}.start", f"{base}.log"


def execution_command(
    owner: str | os.PathLike[str] | None = None,
    idle: float | None = None,
    python: str = sys.executable,
) -> str:
    """Return the ``execution_cmd`` of a jobflow-remote worker that uses the warm executor.

    ``owner``: a pid file (the runner daemon's) whose process must be alive for an idle server to
    stay; ``idle``: seconds before an idle server retires (default :data:`DEFAULT_IDLE`). The
    client runs isolated (``-I -S``): no site packages to scan, so it starts in milliseconds.
    """
    import shlex

    parts = [python, "-I", "-S", os.path.abspath(__file__), *_options(owner, idle)]
    return " ".join(shlex.quote(part) for part in parts) + " {}"


def _options(owner: str | os.PathLike[str] | None, idle: float | None) -> list[str]:
    options = []
    if owner is not None:
        options += ["--owner", os.fspath(owner)]
    if idle is not None:
        options += ["--idle", f"{idle:g}"]
    return options


# --------------------------------------------------------------------------- client


def _connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _start_server(key: str, options: list[str]) -> socket.socket | None:
    """Start the server ``key`` (unless a racing client did) and connect to it.

    The start lock makes racing clients wait for the one that starts the server instead of
    importing everything twice on the same cores.
    """
    import fcntl
    import subprocess

    sock_path, lock_path, start_path, log_path = _paths(key)
    os.makedirs(exec_dir(), mode=0o700, exist_ok=True)
    with open(start_path, "a") as start_lock:
        fcntl.flock(start_lock, fcntl.LOCK_EX)
        sock = _connect(sock_path)
        if sock is not None:
            return sock
        with open(log_path, "ab") as log:
            server = subprocess.Popen(
                [sys.executable, "-P", "-m", _MODULE, "--serve", sock_path, lock_path, *options],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd="/",
                start_new_session=True,  # outlives this job and its shell
                close_fds=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            sock = _connect(sock_path)
            if sock is not None or server.poll() is not None:
                return sock or _connect(sock_path)
            time.sleep(0.02)
    server.kill()
    return None


def _send_job(sock: socket.socket, run_dir: str) -> None:
    """Send the job request: run dir, cwd, umask and environment, with fds 0, 1 and 2 attached."""
    umask = os.umask(0o022)
    os.umask(umask)
    request = {"run_dir": run_dir, "cwd": os.getcwd(), "umask": umask, "env": dict(os.environ)}
    payload = json.dumps(request).encode()
    socket.send_fds(sock, [_LENGTH.pack(len(payload))], [0, 1, 2])
    sock.sendall(payload)


def _recv_status(sock: socket.socket, shell: int) -> tuple[bytes, int] | None:
    """Receive the next status message; None if the server hung up.

    Gives up (exit 1, which closes the connection and so kills the job) if the shell that started
    this client is killed.
    """
    data = b""
    while len(data) < _STATUS.size:
        try:
            chunk = sock.recv(_STATUS.size - len(data))
        except TimeoutError:
            if os.getppid() != shell:
                print("crystal_atomate warm executor: the job's shell was killed; stopping the job",
                      file=sys.stderr)
                sys.exit(1)
            continue
        if not chunk:
            return None
        data += chunk
    return _STATUS.unpack(data)


def _run_on(sock: socket.socket, run_dir: str) -> int | None:
    """Run the job on the server behind ``sock``; return its exit status.

    None if the server did not take the job (retiring or gone before it started: safe to ask again).
    """
    shell = os.getppid()
    with sock:
        sock.settimeout(1.0)
        try:
            _send_job(sock, run_dir)
            started = _recv_status(sock, shell)
        except OSError:
            return None
        if started is None or started[0] != _STARTED:
            return None
        exited = _recv_status(sock, shell)
    if exited is None:
        print(f"crystal_atomate warm executor: lost the server running job {started[1]}",
              file=sys.stderr)
        return 1
    code = exited[1]
    return 128 - code if code < 0 else code


def _fallback(run_dir: str, why: str) -> None:
    """Become ``jf execution run RUN_DIR``: same process, same files, a normal interpreter."""
    print(f"crystal_atomate warm executor: {why}; running the job in this process", file=sys.stderr)
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-c", _FALLBACK, run_dir])


def client_main(argv: list[str]) -> int:
    """``remote_exec.py [--owner PIDFILE] [--idle SECONDS] RUN_DIR``: run one job on a warm server."""  # noqa: E501 - the usage message
    *options, run_dir = argv or ["--help"]
    if run_dir.startswith("-") or len(options) % 2:
        print(client_main.__doc__, file=sys.stderr)
        return 2
    key = server_key(dict(os.environ), options)
    why = "no warm server could be started"
    for _ in range(_ATTEMPTS):
        try:
            sock = _connect(_paths(key)[0]) or _start_server(key, options)
        except OSError as exc:
            why = f"no warm server ({exc})"
            break
        if sock is None:
            break
        code = _run_on(sock, run_dir)
        if code is not None:
            return code
        why = "the warm server did not take the job"
    _fallback(run_dir, why)
    return 1


# --------------------------------------------------------------------------- server


def _log(message: str) -> None:
    stamp = f"{time.strftime('%Y-%m-%d %H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}"
    print(f"{stamp} [{os.getpid()}] {message}", file=sys.stderr,
          flush=True)


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("client hung up")
        data += chunk
    return data


def _module_files() -> dict[str, int]:
    """Modification times of every module file loaded: a changed one makes the server stale."""
    files = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path:
            try:
                files[path] = os.stat(path).st_mtime_ns
            except OSError:
                continue
    return files


def _stale(files: dict[str, int]) -> bool:
    for path, mtime in files.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


def _alive(pid_file: str | None) -> bool:
    """Whether the process in ``pid_file`` runs (no owner: always)."""
    if pid_file is None:
        return True
    try:
        with open(pid_file) as handle:
            os.kill(int(handle.read().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def _die_with_client(conn: socket.socket) -> None:
    """In a job: block until the client hangs up, then kill the job's process group."""
    try:
        while conn.recv(1):
            continue
    except OSError:
        pass
    os.killpg(os.getpid(), signal.SIGKILL)


def _run_job(run_dir: str) -> int:
    """``jf execution run RUN_DIR`` in this (forked) process; its exit status."""
    import atexit
    import traceback

    from jobflow_remote.jobs.run import run_remote_job

    try:
        run_remote_job(run_dir)
        code = 0
    except SystemExit as exc:  # as the interpreter treats it: int status, None 0, else print, 1
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - the job's interpreter reports everything and exits
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()  # what the interpreter does at exit, os._exit skips it
    return code


class _Server:
    """One warm interpreter serving jobs on a Unix socket (single-threaded, so forking is safe)."""

    def __init__(self, sock_path: str, lock_path: str, idle: float, owner: str | None) -> None:
        import selectors

        self.sock_path, self.lock_path, self.idle, self.owner = sock_path, lock_path, idle, owner
        self.jobs: dict[int, tuple[socket.socket, str, float]] = {}
        self.last_job = time.monotonic()
        self.retiring: str | None = None
        self.terminated = False
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.listener: socket.socket | None = None
        self.lock = None
        self.files: dict[str, int] = {}

    def warm(self) -> None:
        import gc
        import importlib

        start = time.perf_counter()
        for name in WARM_MODULES:
            try:
                importlib.import_module(name)
            except ImportError as exc:  # a job that needs it imports it (or fails) itself
                _log(f"not warmed: {name} ({exc})")
        self.files = _module_files()
        gc.freeze()  # forked jobs then do not copy every page by collecting the server's objects
        _log(f"imported {len(self.files)} modules in {time.perf_counter() - start:.1f} s")

    def take_socket(self, timeout: float = 30.0) -> bool:
        """Own the socket path (its lock) and listen; False if another server already serves it."""
        import fcntl

        self.lock = open(self.lock_path, "a+")  # noqa: SIM115 - held (so open) while serving
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                probe = _connect(self.sock_path)
                if probe is not None or time.monotonic() > deadline:
                    if probe is not None:
                        probe.close()
                    return False
                time.sleep(0.05)
        self.lock.truncate(0)
        self.lock.write(str(os.getpid()))
        self.lock.flush()
        if os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.sock_path)
        os.chmod(self.sock_path, 0o600)
        self.listener.listen(64)
        return True

    def serve(self) -> None:
        import selectors

        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self.terminate)
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno())
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        _log(f"serving on {self.sock_path}")
        while self.jobs or not self.retiring:
            for key, _ in self.selector.select(timeout=1.0):
                if key.fileobj is self.listener:
                    self.accept()
                else:
                    self.wake_r.recv(4096)
            self.reap()
            self.check_retire()
        _log(f"stopped ({self.retiring})")

    def terminate(self, *_: object) -> None:
        """SIGTERM: retire from the main loop, not from inside whatever the signal interrupted."""
        self.terminated = True  # the wakeup fd ends the select

    def check_retire(self) -> None:
        if self.terminated:
            self.retire("SIGTERM")
        if self.jobs or self.retiring:
            return
        if time.monotonic() - self.last_job > self.idle:
            self.retire(f"idle for {self.idle:g} s")
        elif not _alive(self.owner):
            self.retire(f"owner {self.owner} gone")

    def retire(self, why: str) -> None:
        """Stop taking jobs and give up the socket path at once.

        A new server may take the path while this one finishes its running jobs.
        """
        if self.retiring or self.listener is None:
            return
        self.retiring = why
        self.selector.unregister(self.listener)
        os.unlink(self.sock_path)
        self.listener.close()
        self.lock.close()

    def accept(self) -> None:
        conn, _ = self.listener.accept()
        try:
            conn.settimeout(10.0)
            header, fds, _, _ = socket.recv_fds(conn, _LENGTH.size, 3)
            request = json.loads(_recv_exact(conn, _LENGTH.unpack(header)[0]))
        except (OSError, ValueError, struct.error) as exc:
            _log(f"bad request: {exc!r}")
            conn.close()
            return
        if len(fds) != 3 or _stale(self.files):
            conn.sendall(_STATUS.pack(_RETIRED, 0))
            conn.close()
            for fd in fds:
                os.close(fd)
            self.retire("a module file changed" if len(fds) == 3 else "request without 3 fds")
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self.child(conn, fds, request)
        for fd in fds:
            os.close(fd)
        conn.sendall(_STATUS.pack(_STARTED, pid))
        self.jobs[pid] = (conn, request["run_dir"], time.monotonic())
        _log(f"job {pid} started: {request['run_dir']}")

    def child(self, conn: socket.socket, fds: list[int], request: dict) -> None:
        """In the forked job: become the client's process, run the job, never return."""
        code = 1
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
            for owned in (self.listener, self.wake_r, self.wake_w, self.lock, self.selector):
                owned.close()
            conn.settimeout(None)
            for other, *_ in self.jobs.values():
                other.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            os.environ.clear()
            os.environ.update(request["env"])
            time.tzset()
            os.umask(request["umask"])
            os.chdir(request["cwd"])
            if "numpy" in sys.modules:
                sys.modules["numpy"].random.seed()
            import threading

            threading.Thread(target=_die_with_client, args=(conn,), daemon=True).start()
            code = _run_job(request["run_dir"])
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def reap(self) -> None:
        while self.jobs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn, run_dir, start = self.jobs.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            try:
                conn.sendall(_STATUS.pack(_EXITED, code))
            except OSError:
                pass  # the client is gone (and so is the job)
            conn.close()
            self.last_job = time.monotonic()
            _log(f"job {pid} exited {code} after {self.last_job - start:.2f} s: {run_dir}")


def serve_main(argv: list[str]) -> int:
    """``--serve SOCKET LOCK [--owner PIDFILE] [--idle SECONDS]``: run a server until it retires."""
    sock_path, lock_path, *rest = argv
    options = dict(zip(rest[::2], rest[1::2], strict=False))
    server = _Server(
        sock_path, lock_path, float(options.get("--idle", DEFAULT_IDLE)), options.get("--owner")
    )
    if not server.take_socket():
        _log("another server serves this socket")
        return 0
    server.warm()  # after binding: clients queue meanwhile, and a bad socket path fails fast
    server.serve()
    return 0


# --------------------------------------------------------------------------- administration


def lock_holder(lock_path: str) -> int | None:
    """Return the pid written in ``lock_path`` by the process holding its lock.

    None when the file is missing or its lock is free (taken here for an instant, and let go as the
    file closes).
    """
    import fcntl

    if not os.path.exists(lock_path):
        return None
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            text = lock.read().strip()
            return int(text) if text.isdigit() else None
    return None


def running_servers(directory: str | None = None) -> dict[str, int]:
    """Return the pid of every server holding its lock in ``directory``, by key.

    ``directory`` defaults to :func:`exec_dir`.
    """
    import glob

    servers = {}
    for lock_path in glob.glob(os.path.join(directory or exec_dir(), "*.lock")):
        pid = lock_holder(lock_path)
        if pid is not None:
            servers[os.path.basename(lock_path)[: -len(".lock")]] = pid
    return servers


def stop_servers(directory: str | None = None, timeout: float = 30.0) -> list[int]:
    """SIGTERM every server in ``directory`` and wait until they are gone; their pids."""
    pids = list(running_servers(directory).values())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    while any(_pid_running(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"warm executor servers {pids} did not stop")
        time.sleep(0.05)
    return pids


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.exit(serve_main(sys.argv[2:]))
    sys.exit(client_main(sys.argv[1:]))
