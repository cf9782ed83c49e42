"""The module zygote: a client that behaves as Python, processes forked from a preloaded server.

Real processes, no network: the client script run the way ansible starts an
interpreter (code on stdin, or a file argument), its fallback to the real
Python when the server is away, a killed client taking its module with it,
and real ansible runs giving the same results with and without the zygote.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_discovery_operator.running import AnsibleRunner
from cluster_discovery_operator.settings import KubeSettings, RunningSettings
from cluster_discovery_operator.watches import GroupVersionKind, Watch
from cluster_discovery_operator.zygote import SOCKET_VARIABLE, Zygote, parsing_once

from testbed import proctree
from testbed.procs import wait_for
from testbed.proctree import cpu_seconds
from tests.kubeconfigs import inline_credentials_kubeconfig
from tests.unit.runner.run_items import run_item

PLAYBOOK = Path(__file__).resolve().parent / "data" / "playbooks" / "modules.yml"


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    with Zygote(tmp_path_factory.mktemp("zygote")) as started:
        yield started


def _client(zygote: Zygote, *args: str, code: str = "", env: dict[str, str] | None = None, cwd: Path | None = None):
    environment = {**os.environ, SOCKET_VARIABLE: os.fspath(zygote.socket_path), **(env or {})}
    return subprocess.run(
        [os.fspath(zygote.client_path), *args],
        input=code,
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=60,
    )


def test_code_on_stdin_runs_as_main_in_a_preloaded_process_with_the_clients_environment(
    zygote: Zygote, tmp_path: Path
) -> None:
    code = (
        "import os, sys\n"
        "print(__name__, os.getcwd(), os.environ['GREETING'], 'ansible.module_utils.basic' in sys.modules)\n"
        "print('to stderr', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    done = _client(zygote, code=code, env={"GREETING": "hello"}, cwd=tmp_path)
    assert done.returncode == 3
    assert done.stdout.split() == ["__main__", os.fspath(tmp_path), "hello", "True"]
    assert done.stderr == "to stderr\n"


def test_a_file_argument_runs_that_file_and_an_uncaught_exception_is_reported_as_python_would(
    zygote: Zygote, tmp_path: Path
) -> None:
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint(sys.argv[1:])\nraise ValueError('broken on purpose')\n")
    done = _client(zygote, os.fspath(script), "one")
    assert done.returncode == 1
    assert done.stdout == "['one']\n"
    assert "ValueError: broken on purpose" in done.stderr and "Traceback" in done.stderr


def test_a_module_process_ends_as_python_does_so_the_kubeconfigs_key_it_copied_is_removed(
    zygote: Zygote, tmp_path: Path
) -> None:
    # The Kubernetes client copies a kubeconfig's inline certificates and key to temporary files and removes them
    # in an exit handler: a module process that skipped the handlers left a copy of the key behind at every run.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(inline_credentials_kubeconfig()))
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    code = (
        "import os, kubernetes.config\n"
        "kubernetes.config.load_kube_config(config_file=os.environ['KUBECONFIG'])\n"
        "print(len(os.listdir(os.environ['TMPDIR'])))\n"
    )
    done = _client(zygote, code=code, env={"KUBECONFIG": os.fspath(kubeconfig), "TMPDIR": os.fspath(temporary)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "3\n"  # the CA, the certificate and the key, while the module ran
    assert list(temporary.iterdir()) == []


def _payload(folder: Path, source: str) -> Path:
    """A zip holding ``pkg/mod.py``, in a folder of its own, as each AnsiballZ run unpacks its payload."""
    folder.mkdir()
    path = folder / "payload.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
        archive.writestr("pkg/mod.py", source)
    return path


def test_a_file_imported_from_a_zip_is_compiled_once_and_keeps_the_current_zips_path(
    zygote: Zygote, tmp_path: Path
) -> None:
    assert zygote.folder is not None
    code = "import os, sys\nsys.path.insert(0, os.environ['PAYLOAD'])\nfrom pkg import mod\n"
    code += "print(mod.answer(), mod.where())\n"
    source = "def answer():\n    return 42\n\ndef where():\n    return answer.__code__.co_filename\n"

    def imported(payload: Path) -> list[str]:
        return _client(zygote, code=code, env={"PAYLOAD": os.fspath(payload)}).stdout.split()

    cache = zygote.folder / "code"
    before = set(cache.iterdir())
    first, second = _payload(tmp_path / "a", source), _payload(tmp_path / "b", source)
    assert imported(first) == ["42", f"{first}/pkg/mod.py"]
    compiled = set(cache.iterdir()) - before
    assert len(compiled) == 2, "pkg/__init__.py and pkg/mod.py"
    assert imported(second) == ["42", f"{second}/pkg/mod.py"]
    assert set(cache.iterdir()) - before == compiled, "the second payload compiled nothing"
    changed = _payload(tmp_path / "c", source.replace("42", "43"))
    assert imported(changed) == ["43", f"{changed}/pkg/mod.py"]
    assert len(set(cache.iterdir()) - before) == 3, "a changed file is compiled anew"


def test_without_the_server_the_client_runs_the_real_python(zygote: Zygote, tmp_path: Path) -> None:
    done = _client(
        zygote,
        code="import sys; print(sys.executable); sys.exit(4)",
        env={SOCKET_VARIABLE: os.fspath(tmp_path / "nobody-listens")},
    )
    assert done.returncode == 4
    assert Path(done.stdout.strip()).name.startswith("python")


def test_a_killed_client_takes_its_module_process_with_it(zygote: Zygote, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time\nopen({os.fspath(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)\n"
    environment = {**os.environ, SOCKET_VARIABLE: os.fspath(zygote.socket_path)}
    client = subprocess.Popen([os.fspath(zygote.client_path)], stdin=subprocess.PIPE, text=True, env=environment)
    assert client.stdin is not None
    client.stdin.write(code)
    client.stdin.close()
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the module never started"
        time.sleep(0.05)
    module_pid = int(pid_file.read_text())
    assert module_pid != client.pid
    client.send_signal(signal.SIGKILL)
    client.wait(timeout=10)
    deadline = time.monotonic() + 10
    while proctree.alive(module_pid):
        assert time.monotonic() < deadline, "the module outlived its client"
        time.sleep(0.05)


def _cpu_of_waited_children(pid: int) -> float:
    """The CPU of the children ``pid`` waited for, as ps, top and the benchmarks read it."""
    return cpu_seconds(pid, children=True) - cpu_seconds(pid, children=False)


def test_what_a_module_process_uses_is_counted_in_the_zygotes_cpu_time(tmp_path: Path) -> None:
    # Whoever measures the operator (its process tree's CPU, as the benchmarks do) must see its modules.
    with Zygote(tmp_path) as zygote:
        assert zygote.process is not None
        before = _cpu_of_waited_children(zygote.process.pid)
        burn = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n"
        done = _client(zygote, code=burn)
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 10
        while _cpu_of_waited_children(zygote.process.pid) - before < 0.4:
            assert time.monotonic() < deadline, "the module's half CPU-second is counted nowhere"
            time.sleep(0.1)


def test_a_zygote_that_cannot_start_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="zygote"):
        Zygote(tmp_path, python="/bin/false", start_timeout=5).start()


WATCH = Watch(gvk=GroupVersionKind("test.example.com", "v1", "Echo"), playbook=str(PLAYBOOK))


def _objects(out_dir: Path) -> list[dict]:
    return [
        {
            "apiVersion": "test.example.com/v1",
            "kind": "Echo",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
            "spec": {"outDir": os.fspath(out_dir), "failInModule": name == "b"},
        }
        for name in ("a", "b", "c")
    ]


def _run(runner: AnsibleRunner, tmp_path: Path, objects: list[dict]):
    items = [run_item(WATCH, tmp_path, obj) for obj in objects]
    return runner.run(WATCH, items, batch_dir=tmp_path / "batch", cancel=threading.Event())


def test_modules_give_the_same_results_with_and_without_the_zygote(tmp_path: Path) -> None:
    plain = AnsibleRunner(RunningSettings(artifacts_dir=tmp_path / "plain", module_zygote=False), KubeSettings())
    forked = AnsibleRunner(RunningSettings(artifacts_dir=tmp_path / "forked", module_zygote=True), KubeSettings())
    try:
        assert forked.interpreter != sys.executable
        outcomes = {}
        for label, runner in (("plain", plain), ("forked", forked)):
            out_dir = tmp_path / f"out-{label}"
            out_dir.mkdir()
            outcome = _run(runner, tmp_path / label, _objects(out_dir))
            outcomes[label] = {
                host: (result.failed, result.counts, bool(result.message)) for host, result in outcome.hosts.items()
            }
            assert sorted(p.name for p in out_dir.iterdir()) == ["a.txt", "b.txt", "c.txt"]
            assert (out_dir / "a.txt").read_text() == "hello a\n"
            assert oct((out_dir / "a.txt").stat().st_mode & 0o777) == "0o640"
            stdout = (outcome.artifacts_dir / "stdout").read_text()
            assert "c wrote hello c" in stdout
            refusals = [line for line in stdout.splitlines() if "a refused: " in line]
            assert refusals and "not-a-multiaddr" in refusals[0], stdout
        assert outcomes["forked"] == outcomes["plain"]
        assert outcomes["forked"]["ns/b"][0] is True and outcomes["forked"]["ns/a"][0] is False
    finally:
        forked.close()
    assert not forked_socket_exists(tmp_path)


def forked_socket_exists(tmp_path: Path) -> bool:
    return (tmp_path / "forked" / "zygote" / "zygote.sock").exists()


def test_the_server_ends_when_the_process_that_started_it_dies(tmp_path: Path) -> None:
    """An operator killed without stopping its zygote (SIGKILL, OOM) leaves no server behind."""
    starter = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from cluster_discovery_operator.zygote import Zygote\n"
        f"zygote = Zygote(Path({os.fspath(tmp_path)!r})).start()\n"
        "print(zygote.process.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    operator = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    assert operator.stdout is not None
    server_pid = int(operator.stdout.readline())
    operator.kill()
    operator.wait(timeout=10)
    deadline = time.monotonic() + 10
    while proctree.alive(server_pid):
        assert time.monotonic() < deadline, "the zygote outlived the process that started it"
        time.sleep(0.1)


def test_the_zygote_lives_in_a_private_folder_of_its_own_and_refuses_other_users() -> None:
    # Under a world-traversable parent, so that the only guards are the zygote's own.
    parent = Path(tempfile.mkdtemp(prefix="zygote-test-"))
    parent.chmod(0o755)
    try:
        with Zygote(parent) as zygote:
            assert zygote.folder is not None and zygote.folder.parent == parent
            assert zygote.folder.name.startswith("zygote-")
            assert zygote.folder.stat().st_mode & 0o077 == 0, oct(zygote.folder.stat().st_mode)
            assert zygote.folder.stat().st_uid == os.getuid()
            if os.getuid() != 0:
                pytest.skip("another user's connection can be tried only as root")
            assert _request_as_nobody(zygote) == "refused"  # the private folder keeps others out
            zygote.folder.chmod(0o755)  # opened, as a mistaken deployment might
            zygote.socket_path.chmod(0o777)
            assert _request_as_nobody(zygote) == "refused"  # the peer's uid is checked all the same
            zygote.socket_path.chmod(0o700)
            zygote.folder.chmod(0o700)
            assert _request_as_nobody(zygote, become_nobody=False) == "served"  # the same request, as us
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _request_as_nobody(zygote: Zygote, *, become_nobody: bool = True) -> str:
    """Send the zygote a request as the client script would, from a forked process running as nobody."""
    code_read, code_write = os.pipe()
    out_read, out_write = os.pipe()
    os.write(code_write, b"print('served')\n")
    os.close(code_write)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child ends with os._exit
        try:
            if become_nobody:
                os.setgid(65534)
                os.setuid(65534)
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            conn.connect(os.fspath(zygote.socket_path))
            request = {"argv": ["python"], "env": {"PATH": "/usr/bin"}, "cwd": "/", "umask": 0o022}
            socket.send_fds(conn, [json.dumps(request).encode()], [code_read, out_write, out_write])
            conn.settimeout(30)
            conn.recv(4)
        except OSError:
            pass
        os._exit(0)
    os.close(code_read)
    os.close(out_write)
    os.waitpid(child, 0)
    with os.fdopen(out_read) as out:
        return "served" if out.read().strip() == "served" else "refused"


def test_an_artifacts_folder_too_deep_for_a_socket_puts_the_socket_in_the_temporary_folder(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 5)
    with Zygote(deep) as started:
        assert len(os.fsencode(started.socket_path)) <= 107
        assert started.socket_path.parent.parent == Path(tempfile.gettempdir())
        folder = started.socket_path.parent
        result = _client(started, code="print('hello from the zygote')")
        assert (result.returncode, result.stdout) == (0, "hello from the zygote\n"), result.stderr
    assert not folder.exists()


# -- playbooks ---------------------------------------------------------------------

WHOSE_CHILD = Path(__file__).resolve().parent / "data" / "playbooks" / "whose_child.yml"
SLEEP = Path(__file__).resolve().parent / "data" / "playbooks" / "sleep.yml"
_STARTED_BY = re.compile(r"started by (\d+) with (\d+) forks")


def _started_by(stdout: str) -> tuple[int, int]:
    """The parent of the run's ansible-playbook process, and the forks it ran with (whose_child.yml)."""
    found = _STARTED_BY.search(stdout)
    assert found, stdout
    return int(found.group(1)), int(found.group(2))


def test_runs_are_forked_from_the_playbook_zygote_and_print_what_a_new_process_prints(tmp_path: Path) -> None:
    watch = Watch(gvk=GroupVersionKind("test.example.com", "v1", "Echo"), playbook=str(WHOSE_CHILD))
    fresh_settings = RunningSettings(artifacts_dir=tmp_path / "fresh", module_zygote=False, playbook_zygote=False)
    fresh = AnsibleRunner(fresh_settings, KubeSettings())
    forked = AnsibleRunner(RunningSettings(artifacts_dir=tmp_path / "forked", module_zygote=False), KubeSettings())
    try:
        assert fresh.playbook_zygote_pid is None and forked.playbook_zygote_pid is not None
        # The runner's zygote gives ansible's imports back after the settings' ten seconds without a run.
        assert b"\0--release-after\x0010.0" in proctree.cmdline(forked.playbook_zygote_pid)
        printed = {}
        for label, runner in (("fresh", fresh), ("forked", forked)):
            for name in ("a", "b"):
                obj = {"apiVersion": "test.example.com/v1", "kind": "Echo", "metadata": {"name": name, "uid": name}}
                item = run_item(watch, tmp_path / label, obj)
                outcome = runner.run(watch, [item], batch_dir=tmp_path / "batch", cancel=threading.Event())
                assert outcome.status == "successful" and not outcome.hosts["localhost"].failed
                stdout = (outcome.artifacts_dir / "stdout").read_text()
                parent, _forks = _started_by(stdout)
                if label == "forked":
                    assert parent == forked.playbook_zygote_pid, "each run is a child of the zygote"
                else:
                    assert parent == os.getpid(), "ansible-runner started ansible-playbook itself"
                printed[label, name] = _STARTED_BY.sub("started by PID", stdout)
        # Word for word, colours included (ansible-runner gives ansible-playbook a terminal).
        assert printed["forked", "b"] == printed["fresh", "b"]
        assert "\x1b[" in printed["forked", "b"]
    finally:
        forked.close()
        fresh.close()
    assert forked.playbook_zygote_pid is None


def test_a_run_with_other_ansible_settings_gets_an_ansible_playbook_of_its_own(tmp_path: Path) -> None:
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    configured = tmp_path / "configured"
    configured.mkdir()
    (configured / "ansible.cfg").write_text("[defaults]\nforks = 9\n")

    def run(env: dict[str, str] | None = None, cwd: Path = tmp_path) -> tuple[int, int]:
        command = [os.fspath(zygote.client_path), "-i", "localhost,", "-c", "local", os.fspath(WHOSE_CHILD)]
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return _started_by(done.stdout)

    with Zygote(tmp_path / "zygote", playbook=playbook) as zygote:
        assert zygote.process is not None and zygote.client_path.name == "ansible-playbook"
        server = zygote.process.pid
        assert run() == (server, 5)
        parent, forks = run({"ANSIBLE_FORKS": "7"})
        assert (parent != server, forks) == (True, 7), "another ANSIBLE_* value: a process of its own"
        parent, forks = run(cwd=configured)
        assert (parent != server, forks) == (True, 9), "another ansible.cfg: a process of its own"
        parent, _ = run({"PYTHONHASHSEED": "3"})
        assert parent != server, "another interpreter setting: a process of its own"
        assert run() == (server, 5), "the same settings again: forked"


def test_an_idle_playbook_zygote_gives_its_imports_back_and_still_forks_the_next_run(tmp_path: Path) -> None:
    """ansible's imports cost the playbook zygote about 55 MiB; after ``release_after`` seconds without a run it
    starts anew in the same process (same PID, socket and client) without them, until the next run imports them."""
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    command = ["-i", "localhost,", "-c", "local", os.fspath(WHOSE_CHILD)]
    env = {**os.environ, "TMPDIR": os.fspath(tmp_path)}

    def run() -> int:
        done = subprocess.run(
            [os.fspath(zygote.client_path), *command],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return _started_by(done.stdout)[0]

    with Zygote(tmp_path / "zygote", playbook=playbook, release_after=2.0) as zygote:
        assert zygote.process is not None
        server = zygote.process.pid
        unloaded = proctree.rss_mib(server)
        assert run() == server
        loaded = proctree.rss_mib(server)
        assert loaded > unloaded + 30, (unloaded, loaded)
        wait_for(
            lambda: proctree.rss_mib(server) <= unloaded + 10,
            timeout=30,
            interval=0.2,
            what=f"the zygote to fall back from {loaded:.0f} MiB to within 10 MiB of {unloaded:.0f}",
        )
        assert zygote.process.poll() is None and zygote.playbook is not None
        # Started anew, it still knows whose death ends it (its parent might be gone, and it with another).
        assert b"\0--parent\0" + str(os.getpid()).encode() + b"\0" in proctree.cmdline(server)
        assert run() == server, "the same process forks the next run"
        assert proctree.rss_mib(server) > unloaded + 30, "and has imported ansible again for it"


def test_a_zygote_told_its_parent_ends_once_that_process_is_not_its_parent(tmp_path: Path) -> None:
    """What a zygote started anew is told: the process whose death must end it, even if already gone."""
    sock = tmp_path / "sock"
    command = [sys.executable, "-m", "cluster_discovery_operator.zygote", "serve", "--playbooks"]
    server = subprocess.Popen([*command, "--socket", os.fspath(sock), "--parent", "1"], stdin=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, timeout=30, what="the zygote to listen")
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
        server.wait()


def test_a_killed_playbook_client_takes_ansible_playbook_its_workers_and_modules_with_it(tmp_path: Path) -> None:
    """ansible's workers leave the run's process group (setsid): they are ended all the same."""
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    with Zygote(tmp_path / "zygote", playbook=playbook) as zygote:
        assert zygote.process is not None
        command = [os.fspath(zygote.client_path), "-i", "localhost,", "-c", "local", os.fspath(SLEEP)]
        command += ["-e", f"ansible_python_interpreter={sys.executable}"]
        # The killed module leaves the folder ansible unpacked it into: in this test's folder, not in /tmp.
        env = {**os.environ, "TMPDIR": os.fspath(tmp_path)}
        client = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        running = _once_sleeping(zygote.process.pid)
        assert len(running) >= 3, running  # ansible-playbook, its worker, the module (and its Python)
        client.kill()
        client.wait(timeout=10)
        left = _left_after(running, seconds=10)
        assert left == {}, "processes of the run outlived its client"


def _once_sleeping(root: int) -> dict[int, bytes]:
    """The command lines of the processes under ``root`` once one of them runs sleep.yml's ``sleep``."""
    deadline = time.monotonic() + 60
    while True:
        running = {pid: proctree.cmdline(pid) for pid in proctree.descendants(root)}
        if any(line.startswith(b"sleep\0") for line in running.values()):
            return running
        assert time.monotonic() < deadline, "the module never started"
        time.sleep(0.1)


def _left_after(processes: dict[int, bytes], *, seconds: float) -> dict[int, bytes]:
    """Those of ``processes`` still alive after ``seconds`` (none as soon as all have ended)."""
    deadline = time.monotonic() + seconds
    while alive := {pid: line for pid, line in processes.items() if proctree.alive(pid)}:
        if time.monotonic() > deadline:
            return alive
        time.sleep(0.05)
    return {}


def test_the_builtin_routing_is_parsed_once_and_each_run_gets_its_own_copy() -> None:
    import ansible
    from ansible.utils.collection_loader._collection_meta import _meta_yml_to_dict

    calls: list[object] = []

    def parse(text: object, content_id: object) -> object:
        calls.append(content_id)
        return _meta_yml_to_dict(text, content_id)

    parse_once = parsing_once(parse)
    routing = (Path(ansible.__file__).parent / "config" / "ansible_builtin_runtime.yml").read_bytes()
    first = parse_once(routing, ("ansible.builtin", "runtime.yml"))
    first["plugin_routing"].clear()  # what one run does to its copy stays in it
    second = parse_once(routing, ("ansible.builtin", "runtime.yml"))
    assert second == _meta_yml_to_dict(routing, None) and second["plugin_routing"]
    assert len(calls) == 1
    other = parse_once(b"plugin_routing: {}\n", ("other.collection", "runtime.yml"))
    assert other == {"plugin_routing": {}} and len(calls) == 2, "other text is parsed anew"


def test_a_hang_up_of_the_runs_terminal_ends_all_of_its_forked_processes(tmp_path: Path) -> None:
    """Cancelling, ansible-runner kills the client and closes the terminal, which hangs up the forked ansible-playbook
    (the terminal's controlling process) at once: its workers, in sessions of their own and without the run's
    marker, must not outlive it, whichever comes first."""
    watch = Watch(gvk=GroupVersionKind("test.example.com", "v1", "Echo"), playbook=str(SLEEP))
    runner = AnsibleRunner(RunningSettings(artifacts_dir=tmp_path / "artifacts", module_zygote=False), KubeSettings())
    try:
        server = runner.playbook_zygote_pid
        assert server is not None
        seen: dict[int, bytes] = {}
        left: dict[int, bytes] = {}

        def hang_up_once_sleeping() -> None:
            seen.update(_once_sleeping(server))
            for pid in proctree.children(server):
                os.kill(pid, signal.SIGHUP)  # the forked ansible-playbook, the terminal's controlling process
            left.update(_left_after(seen, seconds=10))

        helper = threading.Thread(target=hang_up_once_sleeping)
        helper.start()
        obj = {"apiVersion": "test.example.com/v1", "kind": "Echo", "metadata": {"name": "slow", "uid": "slow"}}
        began = time.monotonic()
        outcome = runner.run(
            watch, [run_item(watch, tmp_path, obj)], batch_dir=tmp_path / "b", cancel=threading.Event()
        )
        helper.join()
        assert len(seen) >= 3, seen
        assert left == {}, "processes of the run outlived its hang-up"
        assert outcome.hosts["localhost"].failed and time.monotonic() - began < 60
    finally:
        runner.close()
