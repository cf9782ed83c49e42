"""Real kubo (``ipfs``) nodes on loopback, each in its own private swarm.

A :class:`KuboNode` is the release binary built by ``testbed/build.py`` with a
repository made for tests: loopback listen addresses on free ports, no public
bootstrap list, no MDNS, pubsub on, a ``swarm.key`` and ``LIBP2P_FORCE_PNET=1``
so it can only ever talk to nodes holding the same key.

kubo v0.43.1 refuses several of its defaults on a private network, so the
repository also carries what it requires there (found by running it; see
testbed/README.md, "kubo on a private network"):

- ``AutoConf.Enabled=false``: with a swarm key, the default AutoConf URL (the
  public mainnet service) is a start-up error; and once AutoConf is off, the
  ``"auto"`` placeholders in ``Bootstrap``, ``DNS.Resolvers``,
  ``Routing.DelegatedRouters`` and ``Ipns.DelegatedPublishers`` are errors too,
  so they are emptied (the ``test`` profile does all of this).
- ``Routing.Type=dht``: ``auto`` adds public HTTP routers; kubo falls back with an
  error log, we say it explicitly.
- ``AutoTLS.Enabled=false``: AutoTLS would announce the node to a public CA.
- QUIC, WebTransport and WebRTC-Direct cannot carry a pre-shared key; they are
  off by default once a key is present, and explicitly off here. WebSocket is
  off too: kubo would otherwise share the TCP listener with it, which libp2p
  does not support under a PSK (an error at every start).

Module-level use (demo, benchmarks)::

    with kubo_node_running(base_dir, name="a") as node:
        ...
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from testbed import binaries
from testbed.ports import free_port, is_port_clash
from testbed.procs import ManagedProcess

SWARM_KEY_HEADER = "/key/swarm/psk/1.0.0/\n/base16/\n"
START_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
_START_ATTEMPTS = 3

_names = itertools.count(1)
_names_lock = threading.Lock()


class KuboStartError(RuntimeError):
    """The daemon did not come up; the message carries its log tail."""


def new_swarm_key() -> str:
    """A fresh PSK v1 swarm key (32 random bytes, hex), as kubo reads swarm.key."""
    return SWARM_KEY_HEADER + secrets.token_hex(32) + "\n"


def _next_name() -> str:
    with _names_lock:
        return f"kubo-{next(_names)}"


def loopback_private_config(
    *, api_port: int, gateway_port: int, swarm_port: int, bootstrap: Sequence[str]
) -> dict[str, Any]:
    """The config keys the test bed sets on top of kubo's ``test`` profile (dotted path -> value)."""
    return {
        "Addresses.API": f"/ip4/127.0.0.1/tcp/{api_port}",
        "Addresses.Gateway": f"/ip4/127.0.0.1/tcp/{gateway_port}",
        "Addresses.Swarm": [f"/ip4/127.0.0.1/tcp/{swarm_port}"],
        "Bootstrap": list(bootstrap),
        "Routing.Type": "dht",
        "AutoConf.Enabled": False,
        "AutoTLS.Enabled": False,
        "Discovery.MDNS.Enabled": False,
        "Pubsub.Enabled": True,
        # As the SwarmPool's nodes (roles/swarmpool/templates/configure-private-network.sh.j2).
        "Provide.Strategy": "pinned",
        "Swarm.Transports.Network.QUIC": False,
        "Swarm.Transports.Network.WebTransport": False,
        "Swarm.Transports.Network.WebRTCDirect": False,
        "Swarm.Transports.Network.Websocket": False,
    }


def set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating intermediate objects."""
    *parents, leaf = dotted.split(".")
    node = config
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value


class KuboNode:
    """A kubo daemon with its own repository, ports and swarm key.

    Create with :meth:`init` (makes the repository), then :meth:`start`.
    """

    def __init__(
        self,
        *,
        name: str,
        repo: Path,
        swarm_key: str,
        api_port: int,
        gateway_port: int,
        swarm_port: int,
        peer_id: str,
    ) -> None:
        self.name = name
        self.repo = repo
        self.swarm_key = swarm_key
        self.api_port = api_port
        self.gateway_port = gateway_port
        self.swarm_port = swarm_port
        self.peer_id = peer_id
        self.start_seconds: float | None = None
        """How long the last :meth:`start` took until the RPC API answered."""
        self._process: ManagedProcess | None = None
        self.api_token: str | None = None
        """The token the RPC API asks for (see :meth:`require_token`); None: it answers anyone on loopback."""

    # -- creation -----------------------------------------------------------

    @classmethod
    def init(
        cls,
        base_dir: Path,
        *,
        swarm_key: str | None = None,
        name: str | None = None,
        bootstrap: Sequence[str] = (),
    ) -> KuboNode:
        """``ipfs init`` a test repository under ``base_dir/<name>`` and write its swarm key."""
        name = name or _next_name()
        repo = base_dir / name
        if repo.exists():
            raise FileExistsError(f"kubo repository {repo} already exists; pick another name")
        key = swarm_key if swarm_key is not None else new_swarm_key()
        if not key.endswith("\n"):
            key += "\n"
        repo.mkdir(parents=True)
        env = _daemon_env(repo)
        result = subprocess.run(
            [os.fspath(binaries.ipfs()), "init", "--profile=test", "--empty-repo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise KuboStartError(f"ipfs init of {name} in {repo} failed: {result.stderr.strip() or result.stdout}")
        (repo / "swarm.key").write_text(key)
        (repo / "swarm.key").chmod(0o400)
        config = json.loads((repo / "config").read_text())
        node = cls(
            name=name,
            repo=repo,
            swarm_key=key,
            api_port=free_port(),
            gateway_port=free_port(),
            swarm_port=free_port(),
            peer_id=config["Identity"]["PeerID"],
        )
        node._write_config(bootstrap=bootstrap)
        return node

    def _write_config(self, *, bootstrap: Sequence[str] | None = None) -> None:
        if bootstrap is None:
            bootstrap = json.loads((self.repo / "config").read_text()).get("Bootstrap") or []
        self._set_config(
            loopback_private_config(
                api_port=self.api_port, gateway_port=self.gateway_port, swarm_port=self.swarm_port, bootstrap=bootstrap
            )
        )

    def _set_config(self, overrides: Mapping[str, Any]) -> None:
        """Set these dotted keys in the repository's config, the rest as it is."""
        path = self.repo / "config"
        config = json.loads(path.read_text())
        for dotted, value in overrides.items():
            set_dotted(config, dotted, value)
        path.write_text(json.dumps(config, indent=2))

    def require_token(self, token: str) -> None:
        """Have the RPC API answer only requests bearing ``token``, as a SwarmPool's node does (kubo's
        API.Authorizations, as roles/swarmpool/templates/configure-private-network.sh.j2 sets them); from the next
        start on. A node given a new one is what a SwarmPool made anew under the same name looks like."""
        if self.pid is not None:
            raise RuntimeError(f"kubo node {self.name} reads its API.Authorizations at start: stop it first")
        self._set_config(
            {
                "API.Authorizations": {
                    "cluster-discovery": {"AuthSecret": f"bearer:{token}", "AllowedPaths": ["/api/v0"]}
                }
            }
        )
        self.api_token = token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}

    # -- what tests read ----------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def swarm_addr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.swarm_port}/p2p/{self.peer_id}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.alive() else None

    @property
    def log_path(self) -> Path:
        return self.repo / "daemon.log"

    def rss_bytes(self) -> int:
        return self._process.rss_bytes() if self._process is not None else 0

    def log_tail(self, lines: int = 40) -> str:
        return self._process.log_tail(lines) if self._process is not None else "(never started)"

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Start the daemon on this repository and ports; return once /api/v0/id answers.

        The first start of a node retries with fresh ports when another process
        took one of them between our probe and kubo's bind; later starts keep
        the ports, since peers may have recorded the swarm address.
        """
        if self.pid is not None:
            raise RuntimeError(f"kubo node {self.name} is already running as PID {self.pid}")
        first_start = self._process is None
        for attempt in range(1, _START_ATTEMPTS + 1):
            self._process = ManagedProcess(
                [binaries.ipfs(), "daemon"],
                name=f"ipfs daemon {self.name}",
                log_path=self.log_path,
                env=_daemon_env(self.repo),
                cwd=self.repo,
            )
            began = time.monotonic()
            self._process.start()
            try:
                self._wait_until_answering()
            except KuboStartError:
                log = self._process.log_text()
                self._process.stop(grace=2.0)
                if first_start and attempt < _START_ATTEMPTS and is_port_clash(log):
                    self.api_port, self.gateway_port, self.swarm_port = free_port(), free_port(), free_port()
                    self._write_config()
                    continue
                raise
            self.start_seconds = time.monotonic() - began
            return

    def _wait_until_answering(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not self._process.alive():
                raise KuboStartError(
                    f"kubo node {self.name} exited with {self._process.returncode} before its RPC API answered;"
                    f" log {self.log_path}:\n{self._process.log_tail()}"
                )
            with contextlib.suppress(requests.RequestException):
                reply = requests.post(f"{self.api_url}/api/v0/id", headers=self._headers(), timeout=2)
                if reply.status_code == 200 and reply.json().get("ID") == self.peer_id:
                    return
            time.sleep(0.1)
        raise KuboStartError(
            f"kubo node {self.name} did not answer on {self.api_url} within {START_TIMEOUT_SECONDS:.0f} s;"
            f" log {self.log_path}:\n{self._process.log_tail()}"
        )

    def rpc(self, command: str, *args: str, timeout: float = 30, **params: Any) -> Any:
        """POST /api/v0/<command> with ``arg`` parameters and return kubo's JSON answer (tests look with it)."""
        query: list[tuple[str, Any]] = [("arg", arg) for arg in args] + list(params.items())
        reply = requests.post(
            f"{self.api_url}/api/v0/{command}", params=query, headers=self._headers(), timeout=timeout
        )
        reply.raise_for_status()
        return reply.json()

    def pubsub_topics(self) -> list[str]:
        """The topics the node subscribes to (kubo answers them multibase base64url, ``u...``)."""
        return [_multibase_text(topic) for topic in self.rpc("pubsub/ls").get("Strings") or []]

    def pubsub_peers(self, topic: str) -> list[str]:
        """The peers the node sees on ``topic``."""
        encoded = "u" + base64.urlsafe_b64encode(topic.encode()).decode().rstrip("=")
        return list(self.rpc("pubsub/peers", encoded).get("Strings") or [])

    def stop(self) -> None:
        """Stop the daemon by PID: SIGTERM, then SIGKILL after a grace period."""
        if self._process is not None:
            self._process.stop(grace=STOP_GRACE_SECONDS)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __repr__(self) -> str:
        return f"KuboNode({self.name!r}, api={self.api_url}, pid={self.pid})"


def _multibase_text(value: str) -> str:
    if not value.startswith("u"):
        raise ValueError(f"kubo answered a topic {value!r} not in multibase base64url")
    data = value[1:]
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode("utf-8", "replace")


def _daemon_env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        IPFS_PATH=os.fspath(repo),
        # Refuse to run without a swarm key rather than join the public network.
        LIBP2P_FORCE_PNET="1",
        # A test node talks to loopback only; no report may leave the machine.
        IPFS_TELEMETRY="off",
    )
    return env


class KuboNodes:
    """Creates kubo nodes under one folder and stops them all at :meth:`close`."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.nodes: list[KuboNode] = []

    def __call__(
        self, swarm_key: str | None = None, *, name: str | None = None, bootstrap: Sequence[str] = ()
    ) -> KuboNode:
        node = KuboNode.init(self.base_dir, swarm_key=swarm_key, name=name, bootstrap=bootstrap)
        self.nodes.append(node)
        node.start()
        return node

    def close(self) -> None:
        errors: list[BaseException] = []
        for node in reversed(self.nodes):
            try:
                node.stop()
            except Exception as err:  # stop every node, then report
                errors.append(err)
        if errors:
            raise errors[0]


@contextlib.contextmanager
def kubo_nodes(base_dir: Path | None = None) -> Iterator[KuboNodes]:
    """A node factory whose nodes are all stopped on exit (a temporary folder when ``base_dir`` is None)."""
    with contextlib.ExitStack() as stack:
        if base_dir is None:
            base_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="testbed-kubo-")))
        factory = KuboNodes(base_dir)
        try:
            yield factory
        finally:
            factory.close()


@contextlib.contextmanager
def kubo_node_running(
    base_dir: Path | None = None,
    swarm_key: str | None = None,
    *,
    name: str | None = None,
    bootstrap: Sequence[str] = (),
) -> Iterator[KuboNode]:
    """One started kubo node, stopped on exit."""
    with kubo_nodes(base_dir) as factory:
        yield factory(swarm_key, name=name, bootstrap=bootstrap)
