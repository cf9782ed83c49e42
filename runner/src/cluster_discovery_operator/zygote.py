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
what it started, ansible's workers included though they leave its group, and
its own process group at once.

**Playbooks.** ansible-playbook itself pays its imports too (about 0.4 CPU-s
before it reads the play, with the Kubernetes client the cdo_linear strategy
loads), once per reconcile. Started with ``playbook=``, the server forks runs
of that ansible-playbook script instead, and its client, named
``ansible-playbook``, goes first on the PATH ansible-runner searches. ansible
reads its settings when it is imported, so the server imports
:data:`PLAYBOOK_PRELOAD` at its first request, under that run's environment
and in its folder, and each child then checks that it is the process its own
start would have made: same interpreter variables, same ansible.cfg, every
setting computed anew equal to what was imported, except
:data:`PER_RUN_SETTINGS`, set anew. A run that differs (another ANSIBLE_*
value, another ansible.cfg) is handed to a new ansible-playbook process. What
ansible decided at import from the server's streams (colours, banner width)
is decided again on the run's. ansible-runner starts ansible-playbook as the
leader of a session on a terminal of its own; the client, which pexpect
started so, gives that terminal up and the child, leader of a new session,
takes it (a client on a terminal it does not lead runs the real ansible-playbook).
A hang-up of that terminal (a cancelled run's, closed by ansible-runner) ends
the child as its client's end does: what it started first, then its group.

**Idle.** ansible's imports hold about 55 MiB in the playbook zygote, which
a burst of reconciles repays many times over and an idle operator only pays
for. Started with ``release_after``, a playbook zygote that has imported them
and has had no run for that many seconds ends as a process exits (its exit
handlers run) and executes itself anew, keeping its listening socket: the same
process, socket and client, without the imports until the next run brings
them back. A run that comes meanwhile waits in the socket's queue.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import copy
import fcntl
import gc
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
import termios
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
# {purpose} of the cluster-discovery operator: runs {what} in a process forked
# from a preloaded Python ({module}); in the real Python when that is away.
import json, os, socket, struct, sys
argv = [sys.argv[0], *{prefix!r}, *sys.argv[1:]]
env = dict(os.environ)
terminal = False
{adjust_env}
try:
    if argv[1:2] and argv[1].startswith("-"):
        raise OSError("interpreter options: only the real Python takes them")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect({socket})
{hand_over}
    umask = os.umask(0o022)
    os.umask(umask)
    request = {{"argv": argv, "env": env, "cwd": os.getcwd(), "umask": umask, "terminal": terminal}}
    socket.send_fds(s, [json.dumps(request).encode()], [0, 1, 2])
except (OSError, KeyError):
    os.execve({python!r}, [{python!r}, *argv[1:]], env)
data = b""
while len(data) < 4:
    chunk = s.recv(4 - len(data))
    if not chunk:
        sys.exit(1)
    data += chunk
sys.exit(struct.unpack("!i", data)[0])
"""

# The playbook client is found first on PATH by ansible-runner; what it starts must not find it again.
_WITHOUT_OWN_FOLDER = """\
here = os.path.dirname(os.path.abspath(__file__))
env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and os.path.abspath(p) != here)"""

# ansible-runner starts ansible-playbook as the leader of a session on a terminal of its own (pexpect), and
# what runs in it may use that (the pause action asks the terminal for its foreground group). The client hands
# the terminal on to the forked process, which takes it; a terminal it cannot hand on runs the real one.
_HAND_OVER_TERMINAL = """\
    if os.isatty(0):
        import fcntl, signal, termios
        if os.getsid(0) != os.getpid() or os.tcgetpgrp(0) != os.getpgrp():
            raise OSError("only the leader of the terminal's session can hand it on")
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # giving it up hangs up the terminal's group: ours
        fcntl.ioctl(0, termios.TIOCNOTTY)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        terminal = True"""


def write_client(path: Path, *, python: str, playbook: str | None = None) -> Path:
    """Write the client script (an executable file) at ``path``.

    Without ``playbook``, the client stands for Python (an ``ansible_python_interpreter``) and finds
    the server through :data:`SOCKET_VARIABLE`; with it, for that ansible-playbook script, and the
    server's socket is the one beside it.
    """
    if playbook is None:
        text = CLIENT.format(
            purpose="ansible_python_interpreter",
            what="a module",
            module=__name__,
            python=python,
            prefix=[],
            adjust_env="",
            hand_over="",
            socket=f"os.environ[{SOCKET_VARIABLE!r}]",
        )
    else:
        text = CLIENT.format(
            purpose="ansible-playbook",
            what="ansible-playbook",
            module=__name__,
            python=python,
            prefix=[playbook],
            adjust_env=_WITHOUT_OWN_FOLDER,
            hand_over=_HAND_OVER_TERMINAL,
            socket=repr(os.fspath(path.parent / "sock")),
        )
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# sun_path holds 108 bytes on Linux, the terminating NUL included.
MAX_SOCKET_PATH = 107


class Zygote:
    """The server process and its client script, in ``folder``; a context manager.

    A module zygote by default; given the path of an ansible-playbook script, a playbook zygote
    (see "Playbooks" above), whose client is named ``ansible-playbook`` for ``folder`` to go on PATH.
    """

    def __init__(
        self,
        parent: Path,
        *,
        python: str = sys.executable,
        start_timeout: float = 60.0,
        playbook: str | None = None,
        release_after: float = 0.0,
    ) -> None:
        self.parent = parent
        self.python = python
        self.start_timeout = start_timeout
        self.playbook = playbook
        self.release_after = release_after
        """Seconds without a run after which a playbook zygote gives its imports back (see "Idle"); 0: never."""
        self.process: subprocess.Popen[bytes] | None = None
        self.folder: Path | None = None

    @property
    def socket_path(self) -> Path:
        if self.folder is None:
            raise RuntimeError(f"the {self.kind} zygote is not started")
        return self.folder / "sock"

    @property
    def client_path(self) -> Path:
        if self.folder is None:
            raise RuntimeError(f"the {self.kind} zygote is not started")
        return self.folder / ("python" if self.playbook is None else "ansible-playbook")

    def start(self) -> Zygote:
        # A folder of our own, made anew under an unpredictable name: whoever
        # else can write to ``parent`` cannot have made it first, or swap the
        # socket or the client script in it (mkdtemp creates it 0700).
        self.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder = Path(tempfile.mkdtemp(prefix="zygote-", dir=self._folder_parent()))
        self.process = subprocess.Popen(
            [
                *(self.python, "-m", __name__, "serve"),
                # The kind first: b"zygote\0serve\0--socket" tells the module zygote in a command line.
                *(() if self.playbook is None else ("--playbooks",)),
                *("--socket", os.fspath(self.socket_path)),
                *(("--release-after", repr(self.release_after)) if self.playbook and self.release_after else ()),
            ],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.start_timeout
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.kind} zygote exited with code {self.process.returncode} at start")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.kind} zygote did not listen within {self.start_timeout:.0f} s")
            time.sleep(0.05)
        write_client(self.client_path, python=self.python, playbook=self.playbook)
        # Logged here, not by the zygote: the operator's log has one format, which the zygote does not know.
        log.info(f"{self.kind} zygote ready", extra=fields(socket=os.fspath(self.socket_path), pid=self.process.pid))
        return self

    @property
    def kind(self) -> str:
        return "module" if self.playbook is None else "playbook"

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
    import hashlib  # here, not at the top: OpenSSL is 3.6 MiB of a playbook zygote that has given its imports back

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


def _run_child(conn: socket.socket, request: dict[str, Any], fds: list[int], *, playbooks: bool) -> None:
    """In the forked child: become the client's process, run its script, report the exit code. Never returns."""
    code = 1
    finished = threading.Event()  # set once the script ended: what it left running is its own business
    try:
        if playbooks:
            os.setsid()  # as ansible-runner starts ansible-playbook: the leader of a session, on the terminal if any
        else:
            os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        if request.get("terminal"):
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        os.chdir(request["cwd"])
        os.umask(int(request["umask"]))
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # the server's choice is cached: the client's TMPDIR decides, as in a new process
        argv = list(request["argv"])
        sys.argv = argv[1:] if len(argv) > 1 else [""]  # as `python file args...` or `python < code`
        if playbooks and not sys.flags.safe_path:
            sys.path[0] = os.path.dirname(os.path.realpath(sys.argv[0]))  # the script's folder, not the server's
        if playbooks:
            # ansible wrapped the server's own stream objects (display.py); they now write to the client's
            # descriptors, buffered as a new process's would be on them.
            sys.stdout.reconfigure(line_buffering=os.isatty(1))  # type: ignore[union-attr]
        else:
            sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115

        def end_all() -> None:
            _kill_descendants()
            os.killpg(0, signal.SIGKILL)

        def orphaned() -> None:
            # The client only waits for the exit code; end of stream before it means it was killed.
            with contextlib.suppress(OSError):
                conn.recv(1)
            if not finished.is_set():
                end_all()

        threading.Thread(target=orphaned, daemon=True).start()
        if request.get("terminal"):
            # A cancelled run's terminal closes, which hangs up its controlling process (this one) at once, maybe
            # before the client's end is seen: a started ansible-playbook's workers carry the run's marker and are
            # found by it; ours do not, and must go from here.
            signal.signal(signal.SIGHUP, lambda *_: end_all())
        if playbooks:
            if not (_same_interpreter(request["env"]) and ansible_settings_made_current()):
                # Not what the preloaded ansible was set up for: a process of its own reads it all anew.
                code = subprocess.call([sys.executable, *sys.argv])
                return
            _terminal_made_current()
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
        # What a process's normal end runs: ansible removes its temporary folder, multiprocessing its queues, the
        # Kubernetes client the files it wrote a kubeconfig's certificates and key to.
        atexit._run_exitfuncs()
    finally:
        finished.set()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.sendall(_EXIT.pack(code))
        os._exit(code)


# -- playbooks -----------------------------------------------------------------------

# What ansible-playbook imports before and while it runs a role of this operator (python -X importtime);
# the Kubernetes client because the cdo_linear strategy and kubernetes.core's lookups load it.
PLAYBOOK_PRELOAD = (
    "ansible.cli.playbook",
    "ansible.executor.playbook_executor",
    "ansible.executor.task_queue_manager",
    "ansible.executor.task_executor",
    "ansible.executor.process.worker",
    "ansible.executor.module_common",
    "ansible.inventory.manager",
    "ansible.vars.manager",
    "ansible.playbook.play",
    "ansible.playbook.role",
    "ansible.playbook.task",
    "ansible.playbook.handler_task_include",
    "ansible.template",
    "ansible.utils.hashing",
    # The plugins every run loads (ansible.builtin's are imported under these names, and loaded from here).
    "ansible.plugins.strategy.linear",
    "ansible.plugins.action.normal",
    "ansible.plugins.cache.jsonfile",
    "ansible.plugins.vars.host_group_vars",
    *(f"ansible.plugins.inventory.{name}" for name in ("auto", "host_list", "ini", "script", "toml", "yaml")),
    # PlaybookExecutor reads every connection, shell and become plugin's options before the play.
    *(f"ansible.plugins.connection.{name}" for name in ("local", "ssh", "paramiko_ssh", "psrp", "winrm")),
    *(f"ansible.plugins.shell.{name}" for name in ("sh", "cmd", "powershell")),
    *(f"ansible.plugins.become.{name}" for name in ("su", "sudo")),
    "multiprocessing.synchronize",
    "multiprocessing.shared_memory",
    *KUBERNETES_CLIENT,
    "jinja2",
    "yaml",
)

# Settings that differ from run to run and that ansible reads where it uses them (``C.NAME`` then, copied
# nowhere at import): each process's own temporary folder, made by ansible's configuration for its pid,
# and the fact cache ansible-runner puts in each run's artifacts.
PER_RUN_SETTINGS = ("CACHE_PLUGIN_CONNECTION", "DEFAULT_LOCAL_TMP")


def _interpreter_variables(env: dict[str, str]) -> dict[str, str]:
    """The variables Python and the C library read when a process starts (paths, encodings, locale)."""
    return {name: value for name, value in env.items() if name.startswith(("PYTHON", "LC_")) or name == "LANG"}


_SERVER_INTERPRETER: dict[str, str] = {}


def _same_interpreter(env: dict[str, str]) -> bool:
    return _interpreter_variables(env) == _SERVER_INTERPRETER


def ansible_settings_made_current() -> bool:
    """Make the preloaded ansible's settings this process's own; False when they cannot be.

    True when the configuration file this process's environment and folder lead to is the one
    loaded, and every setting computed anew is the value ansible's constants hold, except
    :data:`PER_RUN_SETTINGS`, which are set anew: then the process is the ansible-playbook its
    own start would have made. Anything else (another ansible.cfg, an ANSIBLE_* variable of
    another value) is for a process of its own.
    """
    from ansible import constants
    from ansible.config.manager import find_ini_config_file

    config = constants.config
    if find_ini_config_file(set()) != config._config_file:
        return False
    # Computing a setting again records its warnings again: they were recorded once already.
    warnings, deprecated = set(config.WARNINGS), list(config.DEPRECATED)
    try:
        for name in config.get_configuration_definitions():
            if name in PER_RUN_SETTINGS:
                continue
            if config.get_config_value(name, variables=vars(constants)) != getattr(constants, name, None):
                return False
    finally:
        config.WARNINGS.clear()
        config.WARNINGS.update(warnings)
        config.DEPRECATED[:] = deprecated
    atexit._clear()  # the server's exit handlers remove the server's temporary folder, not this run's
    for name in PER_RUN_SETTINGS:
        constants.set_constant(name, config.get_config_value(name, variables=vars(constants)))
    return True


def _terminal_made_current() -> None:
    """Decide again, on the run's own streams, what ansible decided at import from the server's."""
    color = sys.modules.get("ansible.utils.color")
    if color is not None:
        importlib.reload(color)  # ANSIBLE_COLOR: whether stdout is a terminal that takes colours
    from ansible.utils.display import Display

    Display()._set_column_width()  # the banners' width, from the terminal's


def parsing_once(parse: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """ansible's ``_meta_yml_to_dict`` (a collection's runtime.yml), keeping each result by the exact text parsed.

    ansible lets this function be replaced and passes a content id so that another can cache; each call
    gets its own copy, as from a parse of its own.
    """
    import hashlib  # here, not at the top: see caching_compiler

    parsed: dict[bytes, Any] = {}

    def parse_once(text: Any, content_id: Any) -> Any:
        key = hashlib.sha256(text if isinstance(text, bytes) else str(text).encode()).digest()
        if key not in parsed:
            parsed[key] = parse(text, content_id)
        return copy.deepcopy(parsed[key])

    return parse_once


def _parse_builtin_routing_once() -> None:
    """Parse ansible.builtin's routing (ansible_builtin_runtime.yml, 370 kB) here, not in each run (0.1 CPU-s)."""
    import ansible
    from ansible.utils.collection_loader import _collection_finder

    parse = getattr(_collection_finder, "_meta_yml_to_dict", None)
    if parse is None:
        return
    parse_once = parsing_once(parse)
    with contextlib.suppress(OSError, ValueError):
        routing = (Path(ansible.__file__).parent / "config" / "ansible_builtin_runtime.yml").read_bytes()
        parse_once(routing, ("ansible.builtin", "runtime.yml"))
    _collection_finder._meta_yml_to_dict = parse_once


def _preload_playbooks(request: dict[str, Any]) -> None:
    """Import what ansible-playbook needs, under the first run's environment and in its folder.

    ansible reads its configuration when it is imported: from the environment and the folder
    of the first run served, which the next runs of the same runner share (the rest is checked
    for each, by :func:`ansible_settings_made_current`).
    """
    _SERVER_INTERPRETER.update(_interpreter_variables(dict(os.environ)))
    os.environ.clear()
    os.environ.update(request["env"])
    try:
        os.chdir(request["cwd"])
    except OSError:
        return
    preload(PLAYBOOK_PRELOAD)
    with contextlib.suppress(ImportError):
        _parse_builtin_routing_once()
    os.chdir("/")
    gc.freeze()


def _descendants(pid: int) -> set[int]:
    """The processes started from ``pid``, however deep, whatever group or session they moved to."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError), open(f"{entry.path}/stat", "rb") as stat_file:
                parents[int(entry.name)] = int(stat_file.read().rsplit(b")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _kill_descendants() -> None:
    """SIGKILL what this process started, including ansible's workers, which leave its group (setsid).

    Each is stopped first, until a look finds nothing new: one killed before its children were
    found would leave them to init, out of reach.
    """
    stopped: set[int] = set()
    while fresh := _descendants(os.getpid()) - stopped:
        for pid in fresh:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        stopped |= fresh
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def same_user(conn: socket.socket) -> bool:
    """True when the process at the other end runs as our user (SO_PEERCRED: pid, uid, gid)."""
    try:
        credentials = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    uid: int = struct.unpack("3i", credentials)[1]
    return uid == os.getuid()


def _reap_children(alive: set[int]) -> None:
    """Wait for every process forked to serve a request that has ended, and take it out of ``alive``.

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
            alive.clear()
            return
        if pid == 0:
            return
        alive.discard(pid)


def _start_anew(server: socket.socket, argv: list[str], *, env: dict[str, str], cwd: str) -> None:
    """End as a process exits, then execute this server again on the same listening socket (see "Idle").

    Returns only when it could not execute (the server then goes on as it is).
    """
    atexit._run_exitfuncs()  # what ansible's import set up to remove at exit (its local temporary folder)
    sys.stdout.flush()
    sys.stderr.flush()
    os.set_inheritable(server.fileno(), True)
    os.chdir(cwd)
    module = __spec__.name if __spec__ is not None else __name__  # run with -m, this module is __main__
    with contextlib.suppress(OSError):
        os.execve(sys.executable, [sys.executable, "-m", module, *argv, "--listen-fd", str(server.fileno())], env)


def serve(
    socket_path: str,
    *,
    playbooks: bool = False,
    release_after: float = 0.0,
    listen_fd: int | None = None,
    parent: int | None = None,
) -> None:
    # Started anew, the server is told the operator it served: had the operator died meanwhile, its parent would
    # already be another process, and the death would never be seen.
    parent = os.getppid() if parent is None else parent
    started_with, started_in = dict(os.environ), os.getcwd()  # _preload_playbooks takes a run's
    preloaded = False  # a playbook zygote imports ansible at its first request
    if not playbooks:
        preload(PRELOAD)
        zipimport._compile_source = caching_compiler(Path(socket_path).parent / "code")  # type: ignore[attr-defined]
        # A child's garbage collections would otherwise walk, and so copy, every page the
        # preloaded modules live on (CPython's advice for a preforking server).
        gc.freeze()
    if listen_fd is None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        old_umask = os.umask(0o077)  # the socket is the operator's alone
        server.bind(socket_path)
        os.umask(old_umask)
        server.listen(128)
    else:
        server = socket.socket(fileno=listen_fd)
    alive: set[int] = set()  # the processes serving requests
    busy_at = time.monotonic()
    while True:
        _reap_children(alive)
        if alive:
            busy_at = time.monotonic()
        # An operator that died without stopping us (SIGKILL, OOM) must not leave us behind.
        if not select.select([server], [], [], 1.0)[0]:
            if os.getppid() != parent:
                return
            if playbooks and preloaded and release_after and time.monotonic() - busy_at >= release_after:
                argv = ["serve", "--playbooks", "--socket", socket_path, "--release-after", repr(release_after)]
                argv += ["--parent", str(parent)]
                _start_anew(server, argv, env=started_with, cwd=started_in)
                release_after = 0.0  # it could not: keep the imports, still serving
            continue
        busy_at = time.monotonic()
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
        if playbooks and not preloaded:
            _preload_playbooks(request)
            preloaded = True
        child = os.fork()
        if child == 0:
            server.close()
            _run_child(conn, request, fds, playbooks=playbooks)
        alive.add(child)
        for fd in fds:
            os.close(fd)
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="preload the module imports and fork a process per module")
    serve_parser.add_argument("--socket", required=True)
    serve_parser.add_argument(
        "--playbooks", action="store_true", help="preload ansible-playbook's imports instead; fork a process per run"
    )
    serve_parser.add_argument(
        "--release-after", type=float, default=0.0, help="seconds without a run before dropping ansible's imports"
    )
    serve_parser.add_argument("--listen-fd", type=int, help="the listening socket, inherited when started anew")
    serve_parser.add_argument("--parent", type=int, help="the process to outlive no longer, when started anew")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(
        args.socket,
        playbooks=args.playbooks,
        release_after=args.release_after,
        listen_fd=args.listen_fd,
        parent=args.parent,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
