"""The test bed's helper rules, without a cluster.

Covered: the listen-address rewrite of the network stand-in, the image check,
how container paths map to host folders, Kubernetes' ``$(VAR)`` expansion and
command/args rules, resource quantities (the same code runs for real in
test_testbed_kubelet.py; these pin down the edge cases quickly), and what
``testbed.cluster down`` does with a cluster that is gone or will not stop.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from testbed import cluster, procs, proctree
from testbed.kube import parse_quantity
from testbed.kuboimage import CMD, ENTRYPOINT, ContainerFS, Mount, container_argv, expand, image_mismatch, parse_image
from testbed.podnet import rewrite_listen_addresses, rewrite_multiaddr


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        pytest.param("/ip4/0.0.0.0/tcp/4001", "/ip4/127.0.0.9/tcp/4001", id="wildcard-binds-pod-ip"),
        pytest.param("/ip4/127.0.0.1/tcp/5001", "/ip4/127.0.0.9/tcp/5001", id="pod-loopback-binds-pod-ip"),
        pytest.param("/ip4/0.0.0.0/udp/4001/quic-v1", "/ip4/127.0.0.9/udp/4001/quic-v1", id="udp-too"),
        pytest.param("/ip6/::/tcp/4001", None, id="ipv6-dropped"),
        pytest.param("/ip4/10.1.2.3/tcp/4001", "/ip4/10.1.2.3/tcp/4001", id="specific-address-kept"),
        pytest.param("/dns4/example.org/tcp/4001", "/dns4/example.org/tcp/4001", id="dns-kept"),
    ],
)
def test_listen_addresses_bound_to_all_interfaces_or_loopback_move_to_the_pod_ip(addr: str, expected: str | None):
    assert rewrite_multiaddr(addr, "127.0.0.9") == expected


def test_the_config_rewrite_touches_only_listen_addresses_and_keeps_their_shape():
    config = {
        "Addresses": {
            "Swarm": ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001"],
            "API": "/ip4/0.0.0.0/tcp/5001",
            "Gateway": ["/ip4/127.0.0.1/tcp/8080"],
            "Announce": ["/ip4/0.0.0.0/tcp/4001"],
        },
        "Bootstrap": ["/ip4/0.0.0.0/tcp/4001/p2p/x"],
    }

    rewritten = rewrite_listen_addresses(config, "127.0.0.9")

    assert rewritten["Addresses"] == {
        "Swarm": ["/ip4/127.0.0.9/tcp/4001"],
        "API": "/ip4/127.0.0.9/tcp/5001",
        "Gateway": ["/ip4/127.0.0.9/tcp/8080"],
        "Announce": ["/ip4/0.0.0.0/tcp/4001"],
    }
    assert rewritten["Bootstrap"] == config["Bootstrap"]
    assert config["Addresses"]["API"] == "/ip4/0.0.0.0/tcp/5001", "the input is not modified"


@pytest.mark.parametrize(
    ("image", "runs"),
    [
        pytest.param("ipfs/kubo:v0.43.1", True, id="short-name"),
        pytest.param("docker.io/ipfs/kubo:v0.43.1", True, id="docker-io"),
        pytest.param("ipfs/kubo:v0.42.0", False, id="other-tag"),
        pytest.param("ipfs/kubo", False, id="latest"),
        pytest.param("ipfs/go-ipfs:v0.8.0", False, id="seed-image"),
        pytest.param("ghcr.io/ipfs/kubo:v0.43.1", False, id="other-registry"),
    ],
)
def test_only_the_built_kubo_release_is_an_available_image(image: str, runs: bool):
    assert (image_mismatch(image, "v0.43.1") is None) == runs


def test_image_references_split_into_repository_and_tag():
    assert parse_image("localhost:5000/ipfs/kubo") == ("localhost:5000/ipfs/kubo", "latest")
    assert parse_image("localhost:5000/ipfs/kubo:v1") == ("localhost:5000/ipfs/kubo", "v1")
    assert parse_image("ipfs/kubo@sha256:ab") == ("ipfs/kubo", "@sha256:ab")


def test_container_paths_map_to_the_longest_mount_else_the_rootfs(tmp_path: Path):
    fs = ContainerFS(
        rootfs=tmp_path / "rootfs",
        mounts=[Mount("/data/ipfs", tmp_path / "pv"), Mount("/data/ipfs/keys", tmp_path / "secret")],
    )

    assert fs.host("/data/ipfs") == tmp_path / "pv"
    assert fs.host("/data/ipfs/config") == tmp_path / "pv" / "config"
    assert fs.host("/data/ipfs/keys/swarm-key") == tmp_path / "secret" / "swarm-key"
    assert fs.host("/data/ipfsx") == tmp_path / "rootfs" / "data/ipfsx"
    assert fs.map_value("/data/ipfs") == str(tmp_path / "pv")
    assert fs.map_value("/ip4/127.0.0.1/tcp/4001") == "/ip4/127.0.0.1/tcp/4001", "a multiaddr is not a path"
    assert fs.map_value("relative/path") == "relative/path"


def test_var_references_expand_as_the_kubelet_expands_them():
    env = {"A": "1", "B": "two"}

    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING) stays", env) == "$(MISSING) stays"
    assert expand("$$(A) is escaped", env) == "$(A) is escaped"
    assert expand("plain $A", env) == "plain $A"


def test_command_and_args_combine_with_the_image_entrypoint_as_kubernetes_defines(tmp_path: Path):
    fs = ContainerFS(rootfs=tmp_path)
    for path in (*ENTRYPOINT[::2], "/usr/local/bin/ipfs"):
        (tmp_path / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path.lstrip("/")).write_text("#!/bin/sh\n")
        (tmp_path / path.lstrip("/")).chmod(0o755)
    tini, start = str(tmp_path / "sbin/tini"), str(tmp_path / "usr/local/bin/start_ipfs")

    assert container_argv(None, None, {}, fs) == [tini, "--", start, *CMD]
    assert container_argv(None, ["daemon", "--x=$(V)"], {"V": "1"}, fs) == [tini, "--", start, "daemon", "--x=1"]
    assert container_argv(["ipfs"], None, {}, fs) == [str(tmp_path / "usr/local/bin/ipfs")], "no CMD with a command"
    assert container_argv(["/bin/sh", "-c", "exit 0"], None, {}, fs)[1:] == ["-c", "exit 0"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("1Gi", Fraction(2**30), id="binary-suffix"),
        pytest.param("500m", Fraction(1, 2), id="milli"),
        pytest.param("2", Fraction(2), id="plain"),
        pytest.param("1e3", Fraction(1000), id="exponent"),
        pytest.param("1.5k", Fraction(1500), id="decimal-suffix"),
    ],
)
def test_resource_quantities_parse_exactly(text: str, value: Fraction):
    assert parse_quantity(text) == value


def test_cluster_down_forgets_a_kubeconfig_that_a_killed_run_left_so_up_starts_anew(tmp_path: Path):
    # A cluster process killed outright (molecule interrupted) leaves its kubeconfig and PID file; `up` must not
    # take them for a running cluster (molecule/testbed's create would then check a dead API server).
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "kubeconfig").write_text("clusters: []\n")
    (tmp_path / "cluster.pid").write_text(f"{gone.pid}\n")
    assert cluster.down(tmp_path) == 0
    assert not (tmp_path / "kubeconfig").exists()
    assert not (tmp_path / "cluster.pid").exists()


def test_cluster_down_past_its_timeout_kills_what_the_cluster_started_in_sessions_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A cluster that ignores SIGTERM, with a child in a session of its own as the control plane's processes are.
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " subprocess.Popen(['sleep', '300'], start_new_session=True); print('ready', flush=True); time.sleep(300)",
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    child = proctree.children(stubborn.pid)
    assert len(child) == 1
    (tmp_path / "kubeconfig").write_text("clusters: []\n")
    (tmp_path / "cluster.pid").write_text(f"{stubborn.pid}\n")
    monkeypatch.setattr(cluster, "STOP_TIMEOUT", 0.5)
    assert cluster.down(tmp_path) == 0
    assert stubborn.wait(timeout=10) == -signal.SIGKILL
    procs.wait_for(lambda: not proctree.alive(child[0]), timeout=10, interval=0.05, what="the cluster's child to end")
    assert not (tmp_path / "kubeconfig").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_program_stopped_by_a_signal_stops_what_it_started_as_after_ctrl_c(signum: signal.Signals, tmp_path: Path):
    # What `python -m demo --keep` does: start processes, wait; a `kill` or a closed terminal must stop them too.
    program = (
        "import pathlib, signal, sys, time\n"
        "from testbed import procs\n"
        "procs.interrupt_on(signal.SIGTERM, signal.SIGHUP)\n"
        f"log = pathlib.Path({str(tmp_path)!r}) / 'log'\n"
        "server = procs.ManagedProcess(['sleep', '300'], name='server', log_path=log)\n"
        "server.start()\n"
        "print(server.pid, flush=True)\n"
        "try:\n"
        "    time.sleep(300)\n"
        "finally:\n"
        "    server.stop()\n"
    )
    demo = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, start_new_session=True)
    assert demo.stdout is not None
    server = int(demo.stdout.readline())
    assert proctree.alive(server)
    demo.send_signal(signum)
    assert demo.wait(timeout=30) != -signum, "ended by the signal itself: nothing it started was stopped"
    procs.wait_for(lambda: not proctree.alive(server), timeout=10, interval=0.05, what="the started process to end")
