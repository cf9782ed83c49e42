"""Runner benchmarks, in one run on this machine against a test-bed control plane. Prints figures, asserts nothing.

(a) a no-op reconcile of an unchanged object (in process: enqueue to done; end
    to end: a status write by someone else until the operator's skip decision
    in its log), against a bare ansible-runner run of the same role for the
    same object;
(b) wall time to reconcile N new objects of one kind (default 200): our runner
    (the console script, default flags) from the creation request until every
    object is Successful, against operator-sdk's way, one ansible-runner run
    per object in sequence, at the same verified result;
(c) the runner's resident memory once idle with those N objects (and their N
    ConfigMaps) watched: right after the burst, and once the playbook zygote
    has given back ansible's imports (ten seconds after its last run).

Usage: ``python -m bench.runner_bench [--objects 200] [--baseline-objects N]
[--variant=FLAGS ...]``. ``--baseline-objects`` below N times the baseline on
that many objects and extrapolates linearly (said so in the output; 0 skips
it); each ``--variant`` also times our runner with those flags (for example
``--variant=--max-batch-size=1``: concurrency without shared processes).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from cluster_discovery_operator.bodies import ObjectKey
from cluster_discovery_operator.dependents import DependentRouter
from cluster_discovery_operator.kube import KubeClient
from cluster_discovery_operator.metrics import OperatorMetrics
from cluster_discovery_operator.reconciling import Controller
from cluster_discovery_operator.running import AnsibleRunner
from cluster_discovery_operator.settings import KubeSettings, QueueingSettings, RunningSettings, Settings

from bench.figures import log_time, percentile, work_folder
from bench.runner_common import (
    GROUP,
    WATCH,
    OperatorSdkWay,
    bench_cluster,
    create_widgets,
    describe,
    kubectl,
    namespace,
    start_operator,
    successful,
    verify,
    wait_until,
    widget,
    widgets,
)
from testbed.controlplane import ControlPlane
from testbed.proctree import MODULE_ZYGOTE, PLAYBOOK_ZYGOTE, children_running, cpu_seconds, rss_mib, tree_cpu_seconds
from tests.integration.runner.operator_process import OperatorProcess


def bench_noop(cp: ControlPlane, work: Path, repeats: int) -> None:
    ns = namespace(cp, "bench-noop")
    kubeconfig = os.fspath(cp.kubeconfig)
    kubectl(cp, "apply", "-f", "-", input=json.dumps(widget("w000", ns)))

    # In process: the reconcile itself, from enqueue to done, with the real cache, queue and API client.
    kube = KubeClient(KubeSettings(kubeconfig=kubeconfig))
    resource = kube.discover(GROUP, "v1alpha1", "Widget")
    settings = Settings(
        namespaces=(ns,),
        queueing=QueueingSettings(max_concurrent_reconciles=1),
        running=RunningSettings(artifacts_dir=work / "noop-inprocess"),
        kube=KubeSettings(kubeconfig=kubeconfig),
    )
    metrics = OperatorMetrics()
    router = DependentRouter(kube, settings, metrics, "bench")
    runner = AnsibleRunner(settings.running, settings.kube)
    controller = Controller(
        watch=WATCH, resource=resource, kube=kube, runner=runner, metrics=metrics, settings=settings, router=router
    )
    router.register(controller)
    informer = controller.informers[ns]
    informer.relist()
    began = time.monotonic()
    while controller.process_next(0, timeout=0):
        pass
    first = time.monotonic() - began
    runner.close()  # every later reconcile must be a skip; no module runs any more
    informer.relist()  # the cache catches up with our own status writes, as the watch would
    while controller.process_next(0, timeout=0):
        pass
    key = ObjectKey(f"{ns}/w000")
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        controller.queue.add(key)
        controller.process_next(0, timeout=1)
        samples.append(time.perf_counter() - began)
    skipped = metrics.registry.get_sample_value(
        "cluster_discovery_operator_runs_skipped_total", {"group": GROUP, "kind": "Widget"}
    )
    runs = metrics.registry.get_sample_value(
        "cluster_discovery_operator_ansible_runs_total", {"group": GROUP, "kind": "Widget"}
    )
    router.stop()

    # End to end: the operator process notices a status write by someone else and decides to skip.
    op = start_operator(cp, ns, work / "noop-process", "--log-level=debug")
    wait_until(lambda: op.count(lambda e: e.get("msg") == "reconciled") >= 1, timeout=300, interval=0.2)
    time.sleep(2)
    end_to_end = []
    for index in range(min(repeats, 20)):
        before = op.count(lambda e: str(e.get("msg", "")).startswith("skipped"))
        sent = time.time()
        kube.patch(resource, namespace=ns, name="w000", body={"status": {"bench": index}}, subresource="status")
        entry = None

        def skipped_again(count: int = before) -> bool:
            nonlocal entry
            found = [e for e in op.logs() if str(e.get("msg", "")).startswith("skipped")]
            if len(found) > count:
                entry = found[count]
                return True
            return False

        wait_until(skipped_again, timeout=30, interval=0.01)
        assert entry is not None
        end_to_end.append(log_time(str(entry["ts"])) - sent)
    process_runs = op.metric("cluster_discovery_operator_ansible_runs_total", group=GROUP, kind="Widget")
    op.terminate()

    # A bare ansible-runner run of the same role for the same object, as operator-sdk starts it.
    baseline = OperatorSdkWay(cp, work / "noop-bare")
    obj = kube.get(resource, namespace=ns, name="w000")
    bare = []
    for index in range(5):
        began = time.monotonic()
        succeeded, message = baseline.run_once(obj, f"bare-{index}")
        bare.append(time.monotonic() - began)
        assert succeeded, message
    kube.close()

    print("(a) no-op reconcile of an unchanged object")
    print(f"    first reconcile (ansible ran)           : {first:.2f} s")
    print(f"    no-op, in process (enqueue -> done)     : {describe(samples, 'ms', 1000)}")
    print(f"      skipped {skipped:.0f} times, ansible processes started: {runs:.0f} (the first reconcile only)")
    print(
        f"    no-op, end to end (status write by someone else -> skip decision logged): "
        f"{describe(end_to_end, 'ms', 1000)}"
    )
    print(f"      operator process: ansible processes started {process_runs:.0f} (its first reconcile only)")
    print(
        f"    bare ansible-runner run of the same role (the ansible-runner command, as operator-sdk runs it): "
        f"{describe(bare)}"
    )
    ratio = statistics.median(bare) / statistics.median(samples)
    print(
        f"    -> a no-op costs {statistics.median(samples) * 1000:.2f} ms (target < 50 ms), "
        f"{ratio:,.0f}x less than a bare run"
    )


def waited(obj: dict[str, Any]) -> float:
    """Seconds from an object's creation to its Successful condition (both stamped by whole seconds)."""
    created = datetime.datetime.fromisoformat(obj["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    by_type = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions", [])}
    done = datetime.datetime.fromisoformat(by_type["Successful"]["lastTransitionTime"].replace("Z", "+00:00"))
    return (done - created).total_seconds()


def bench_burst(cp: ControlPlane, work: Path, count: int, baseline_count: int, variants: list[str]) -> None:
    def ours(label: str, *args: str) -> float:
        slug = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
        ns = namespace(cp, f"bench-{slug}")
        op = start_operator(cp, ns, work / slug, *args)
        runner_cpu, control_plane_cpu = runner_cpu_seconds(op), control_plane_cpu_seconds(cp)
        began = time.monotonic()
        create_widgets(cp, ns, count)
        wait_until(lambda: sum(successful(o) for o in widgets(cp, ns)) == count, timeout=7200, interval=1.0)
        elapsed = time.monotonic() - began
        runner_cpu = runner_cpu_seconds(op) - runner_cpu
        control_plane_cpu = control_plane_cpu_seconds(cp) - control_plane_cpu
        runs = op.metric("cluster_discovery_operator_ansible_runs_total", group=GROUP, kind="Widget") or 0
        print(
            f"    ours, {label:<20}: {elapsed:7.1f} s for {count} objects ({count / elapsed:.2f} objects/s), "
            f"{runs:.0f} ansible-playbook processes; {verify(cp, ns, count)}"
        )
        print(
            f"      CPU: the runner (operator, both zygotes, the ansible-playbook processes and modules they forked) "
            f"{runner_cpu:.1f} CPU-s = {runner_cpu / count * 1000:.0f} ms per object; "
            f"the control plane {control_plane_cpu:.1f} CPU-s"
        )
        waits = sorted(waited(obj) for obj in widgets(cp, ns))
        median = statistics.median(waits)
        print(
            f"      each object's wait, created -> Successful (1 s resolution): median {median:.0f} s, "
            f"p95 {percentile(waits, 0.95):.0f} s, longest {waits[-1]:.0f} s = "
            f"{waits[-1] / max(median, 1):.1f}x the median (target <= 3x)"
        )
        if label == "default flags":
            idle_rss(op, count)
        op.terminate()
        return elapsed

    print(f"(b) reconcile {count} new objects of one kind ({os.cpu_count()} CPUs)")
    ours_default = ours("default flags")
    for variant in variants:
        ours(variant, *variant.split())
    if baseline_count <= 0:
        return

    ns = namespace(cp, "bench-sdk")
    create_widgets(cp, ns, count)
    way = OperatorSdkWay(cp, work / "sdk")
    names = sorted(o["metadata"]["name"] for o in widgets(cp, ns))[:baseline_count]
    began = time.monotonic()
    per_object = [way.reconcile(ns, name) for name in names]
    measured = time.monotonic() - began
    total = measured * count / len(names)
    if len(names) == count:
        how, result = "measured", verify(cp, ns, count)
    else:
        how = f"extrapolated from {len(names)} objects measured in {measured:.1f} s"
        result = f"(only {len(names)} objects reconciled)"
    print(
        f"    operator-sdk way, one ansible-runner run per object in sequence: {total:7.1f} s ({how}); "
        f"per object {describe(per_object)}; {result}"
    )
    print(f"    -> ours is {total / ours_default:.1f}x faster (target >= 15x)")


def runner_cpu_seconds(op: OperatorProcess) -> float:
    """CPU the runner has used: the operator and its process tree (both zygotes, the runs and modules they forked)."""
    return tree_cpu_seconds(op.pid)


def control_plane_cpu_seconds(cp: ControlPlane) -> float:
    return sum(cpu_seconds(pid, children=False) for pid in cp.pids().values())


def runner_rss(op: OperatorProcess) -> dict[str, float]:
    """MiB resident in the operator process and each of its zygotes, the median of five samples a second apart."""
    parts = {
        "the operator process": [op.pid],
        "the module zygote": children_running(op.pid, MODULE_ZYGOTE),
        "the playbook zygote": children_running(op.pid, PLAYBOOK_ZYGOTE),
    }
    samples: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(5):
        for name, pids in parts.items():
            samples[name].append(sum(rss_mib(pid) for pid in pids))
        time.sleep(1)
    return {name: statistics.median(values) for name, values in samples.items()}


def describe_rss(rss: dict[str, float]) -> str:
    return f"{sum(rss.values()):.1f} MiB = " + " + ".join(f"{name} {mib:.1f}" for name, mib in rss.items())


def idle_rss(op: OperatorProcess, count: int) -> None:
    """The runner's memory right after the burst, and once the playbook zygote gave ansible's imports back."""
    watched = op.metric("cluster_discovery_operator_watched_objects", group=GROUP, kind="Widget") or 0
    held = runner_rss(op)
    release_after = RunningSettings.playbook_zygote_release_after
    playbook_zygote = children_running(op.pid, PLAYBOOK_ZYGOTE)
    # Its release shows as its memory falling by ansible's imports (about 55 MiB).
    try:
        wait_until(
            lambda: sum(rss_mib(pid) for pid in playbook_zygote) < held["the playbook zygote"] - 30,
            timeout=release_after + 30,
            interval=1.0,
        )
        when = f"{release_after:.0f} s after its last run, the playbook zygote without ansible's imports"
    except TimeoutError:
        when = f"the playbook zygote did NOT give ansible's imports back within {release_after + 30:.0f} s"
    released = runner_rss(op)
    print(
        f"(c) idle RSS of the runner with {watched:.0f} watched objects (plus their {count} ConfigMaps as dependents), "
        f"target < 150 MiB:\n"
        f"    {when}: {describe_rss(released)}\n"
        f"    right after the burst, with them: {describe_rss(held)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--baseline-objects", type=int, default=None)
    parser.add_argument("--noop-repeats", type=int, default=200)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="also time our runner with these flags, e.g. --variant=--max-batch-size=1",
    )
    parser.add_argument("--skip", choices=("noop", "burst"), action="append", default=[])
    args = parser.parse_args()
    print(f"runner benchmarks; python {sys.version.split()[0]}")
    with work_folder("runner-bench-") as work, bench_cluster(work / "cluster") as cp:
        print(f"control plane: {cp.startup.line('bench') if cp.startup else cp.server}")
        if "noop" not in args.skip:
            bench_noop(cp, work, args.noop_repeats)
        if "burst" not in args.skip:
            baseline = args.objects if args.baseline_objects is None else args.baseline_objects
            bench_burst(cp, work, args.objects, baseline, args.variant)


if __name__ == "__main__":
    main()
