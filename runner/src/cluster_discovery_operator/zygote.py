"""A preforked Python for modules: pay the heavy imports once, fork a fresh process per module.

Every ansible module runs as a new Python process that imports
``ansible.module_utils.basic`` and, for kubernetes.core, the Kubernetes client:
about a CPU-second before its first API request, which is most of what a
reconcile costs once several objects share an ansible-playbook process
(see running.py). kubernetes.core's own answer is cloud.common's turbo mode;
this is the same idea, for every module and without another collection.

**How.** :class:`Zygote` starts ``python -m cluster_discovery_operator.zygote``,
a single-threaded server on a Unix socket that imports :data:`PRELOAD` once.
The runner then gives localhost a tiny client script as
``ansible_python_interpreter``. Ansible starts the client exactly as it would
start Python (module on stdin with pipelining, or a file argument); the client
hands its stdin/stdout/stderr (SCM_RIGHTS), argv, environment, working folder
and umask to the server, which forks. The child takes them over, runs the
AnsiballZ payload as ``__main__`` (AnsiballZ sets the module's arguments at run
time, so nothing of one run leaks into another: each is its own process), and
sends its exit code back. To ansible it is a Python process that started fast.

**Compiled once.** An AnsiballZ payload imports its module and module_utils
from a zip in a fresh temporary folder, and Python compiles every file it
imports from a zip anew (zips carry no bytecode): in a burst of objects that
was a tenth of the module processes' CPU. The server makes zipimport keep what
it compiles in a private folder, keyed by the file's path inside the zip and
the SHA-256 of its source, so a file is compiled once whatever payload it
comes in; the code read back takes the current zip's path as its file name,
so tracebacks stay exact. A changed file is another key: nothing stale runs.

**Failures.** A client that cannot reach the server executes the real
interpreter instead, so modules still run, only slower. A child whose client
went away (a cancelled or timed-out run kills ansible's process group) kills
its own process group at once.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import importlib
import json
import logging
import marshal
import os
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import types
import zipimport
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .logs import fields

# What a kubernetes.core or cluster-discovery module imports before its first request.
# Nothing under ``ansible_collections``: a module finds its collection's code in
# its own payload, through a package that must not be imported before it runs.
# The Kubernetes client, which kubernetes.core's modules and lookups import; the cdo_linear strategy preloads it too.
KUBERNETES_CLIENT = ("kubernetes.client", "kubernetes.config", "kubernetes.dynamic")
PRELOAD = (
    "ansible.module_utils.basic",
    "ansible.module_utils._internal._ansiballz._loader",
    "ansible.module_utils.common.validation",
    "ansible.module_utils.common.dict_transformations",
    # kubernetes.core's resource loading imports ansible's HTTP helpers, and with
    # them cryptography.x509: a tenth of a burst's CPU when every module child paid it.
    "ansible.module_utils.urls",
    *KUBERNETES_CLIENT,
    "urllib3",
    "requests",
    "yaml",
    "jsonpatch",
)
log = logging.getLogger(__name__)

SOCKET_VARIABLE = "CLUSTER_DISCOVERY_ZYGOTE_SOCKET"
_EXIT = struct.Struct("!i")
_MAX_REQUEST = 4 * 1024 * 1024

CLIENT = """\
#!{python} -S
# ansible_python_interpreter of the cluster-discovery operator: runs a module in a
# process forked from its preloaded Python ({module}); the real Python when that is away.
import json, os, socket, struct, sys
try:
    if sys.argv[1:2] and sys.argv[1].startswith("-"):
        raise OSError("interpreter options: only the real Python takes them")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(os.environ[{variable!r}])
    umask = os.umask(0o022)
    os.umask(umask)
    request = {{"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(), "umask": umask}}
    socket.send_fds(s, [json.dumps(request).encode()], [0, 1, 2])
except (OSError, KeyError):
    os.execv({python!r}, [{python!r}, *sys.argv[1:]])
data = b""
while len(data) < 4:
    chunk = s.recv(4 - len(data))
    if not chunk:
        sys.exit(1)
    data += chunk
sys.exit(struct.unpack("!i", data)[0])
"""


def write_client(path: Path, *, python: str) -> Path:
    """Write the client script (an executable file) at ``path``."""
    path.write_text(CLIENT.format(python=python, module=__name__, variable=SOCKET_VARIABLE))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# sun_path holds 108 bytes on Linux, the terminating NUL included.
MAX_SOCKET_PATH = 107


class Zygote:
    """The server process and its client script, in ``folder``; a context manager."""

    def __init__(self, parent: Path, *, python: str = sys.executable, start_timeout: float = 60.0) -> None:
        self.parent = parent
        self.python = python
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.folder: Path | None = None

    @property
    def socket_path(self) -> Path:
        if self.folder is None:
            raise RuntimeError("the module zygote is not started")
        return self.folder / "sock"

    @property
    def client_path(self) -> Path:
        if self.folder is None:
            raise RuntimeError("the module zygote is not started")
        return self.folder / "python"

    def start(self) -> Zygote:
        # A folder of our own, made anew under an unpredictable name: whoever
        # else can write to ``parent`` cannot have made it first, or swap the
        # socket or the client script in it (mkdtemp creates it 0700).
        self.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder = Path(tempfile.mkdtemp(prefix="zygote-", dir=self._folder_parent()))
        self.process = subprocess.Popen(
            [self.python, "-m", __name__, "serve", "--socket", os.fspath(self.socket_path)],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.start_timeout
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"the module zygote exited with code {self.process.returncode} at start")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the module zygote did not listen within {self.start_timeout:.0f} s")
            time.sleep(0.05)
        write_client(self.client_path, python=self.python)
        # Logged here, not by the zygote: the operator's log has one format, which the zygote does not know.
        log.info("module zygote ready", extra=fields(socket=os.fspath(self.socket_path), pid=self.process.pid))
        return self

    def _folder_parent(self) -> Path:
        """``parent``, unless a socket there would not fit AF_UNIX's path limit: then the system's temporary folder.

        ``parent`` is the artifacts folder, as deep as the operator's working directory makes it.
        """
        longest = len(os.fsencode(self.parent.resolve())) + len("/zygote-XXXXXXXX/sock")
        return self.parent if longest <= MAX_SOCKET_PATH else Path(tempfile.gettempdir())

    def _answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as probe:
            try:
                probe.connect(os.fspath(self.socket_path))
            except OSError:
                return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Zygote:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


# -- the server side -----------------------------------------------------------------


def preload(names: tuple[str, ...]) -> list[str]:
    """Import each of ``names`` that can be imported here; the names imported."""
    loaded = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # an optional dependency missing only costs its import later
            continue
        loaded.append(name)
    return loaded


ZIP_SUFFIX = ".zip" + os.sep


def _with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(_with_filename(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def caching_compiler(folder: Path) -> Callable[[str, bytes], types.CodeType]:
    """zipimport's ``_compile_source``, keeping each compiled file in ``folder`` (see "Compiled once")."""
    compile_source: Callable[[str, bytes], types.CodeType] = zipimport._compile_source  # type: ignore[attr-defined]
    folder.mkdir(mode=0o700, exist_ok=True)

    def compile_cached(pathname: str, source: bytes) -> types.CodeType:
        inner = pathname.rpartition(ZIP_SUFFIX)[2]
        key = hashlib.sha256(inner.encode() + b"\0" + source).hexdigest()
        entry = folder / key
        try:
            code = marshal.loads(entry.read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            code = None
        if isinstance(code, types.CodeType):
            return _with_filename(code, pathname)
        code = compile_source(pathname, source)
        with contextlib.suppress(OSError):  # a full disk costs the next compile, not this module
            partial = folder / f".{key}.{os.getpid()}"
            partial.write_bytes(marshal.dumps(code))
            partial.replace(entry)
        return code

    return compile_cached


def _run_child(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become the client's Python, run the payload, report the exit code. Never returns."""
    code = 1
    finished = threading.Event()  # set once the module ended: what it left running is its own business
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.umask(int(request["umask"]))
        os.environ.clear()
        os.environ.update(request["env"])
        argv = list(request["argv"])
        sys.argv = argv[1:] if len(argv) > 1 else [""]  # as `python file args...` or `python < code`
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115

        def orphaned() -> None:
            # The client only waits for the exit code; end of stream before it means it was killed.
            with contextlib.suppress(OSError):
                conn.recv(1)
            if not finished.is_set():
                os.killpg(0, signal.SIGKILL)

        threading.Thread(target=orphaned, daemon=True).start()
        if len(argv) > 1:
            filename = argv[1]
            source = Path(filename).read_text(encoding="utf-8")
        else:
            filename, source = "<stdin>", sys.stdin.read()
        main_module = types.ModuleType("__main__")
        main_module.__file__ = filename
        sys.modules["__main__"] = main_module
        try:
            exec(compile(source, filename, "exec"), main_module.__dict__)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, int) and exc.code is not None:
                print(exc.code, file=sys.stderr)
        except BaseException:  # what Python itself would print for an uncaught exception
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        finished.set()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.sendall(_EXIT.pack(code))
        os._exit(code)


def same_user(conn: socket.socket) -> bool:
    """True when the process at the other end runs as our user (SO_PEERCRED: pid, uid, gid)."""
    try:
        credentials = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    uid: int = struct.unpack("3i", credentials)[1]
    return uid == os.getuid()


def _reap_children() -> None:
    """Wait for every module process that has ended.

    Waited for, not left to the kernel (SIGCHLD ignored): only then is a
    child's CPU time added to ours (cutime), where ps, top and a measure of
    the operator's process tree find it. Left to the kernel, the modules' CPU
    was counted nowhere. A child ended since the last call stays a zombie
    until the next one, at most a second later.
    """
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(socket_path: str) -> None:
    parent = os.getppid()
    preload(PRELOAD)
    zipimport._compile_source = caching_compiler(Path(socket_path).parent / "code")  # type: ignore[attr-defined]
    # A child's garbage collections would otherwise walk, and so copy, every page the
    # preloaded modules live on (CPython's advice for a preforking server).
    gc.freeze()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old_umask = os.umask(0o077)  # the socket is the operator's alone
    server.bind(socket_path)
    os.umask(old_umask)
    server.listen(128)
    while True:
        _reap_children()
        # An operator that died without stopping us (SIGKILL, OOM) must not leave us behind.
        if not select.select([server], [], [], 1.0)[0]:
            if os.getppid() != parent:
                return
            continue
        conn, _ = server.accept()
        if not same_user(conn):
            conn.close()  # the folder is private; a peer of another user is refused all the same
            continue
        try:
            message, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 3)
            request = json.loads(message)
            if len(fds) != 3:
                raise ValueError("a request carries stdin, stdout and stderr")
        except (OSError, ValueError):
            conn.close()
            continue
        if os.fork() == 0:
            server.close()
            _run_child(conn, request, fds)
        for fd in fds:
            os.close(fd)
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="preload the module imports and fork a process per module")
    serve_parser.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
