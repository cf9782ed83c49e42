"""ansible's linear strategy, with a false ``when`` and worker-free actions handled without forking a worker.

The linear strategy forks a worker process for every task of every host, and
the worker is where ``when`` is evaluated: a skipped task costs as much process
machinery as one that runs. Roles written for operator-sdk guard most of their
tasks by the object's state (``when: state == 'present'``, ``when: fail_message
| length > 0``), so in a burst of objects most workers only say "skipped":
measured on 2 CPUs, about 35 ms of CPU per skipped task and host, most of it
copy-on-write page faults of the fork, against a few milliseconds to evaluate
the condition where the variables already are.

So this strategy evaluates the condition in the strategy process, exactly as
the worker's TaskExecutor would (the same task variables, the play context's
connection variables, ``ansible_search_path``, the same engine call), and when
it is false sends the very result the worker would have sent, through the same
results queue: the callbacks, events, stats, ``register`` and ``no_log``
handling are ansible's own and see no difference. Whatever it cannot decide
with certainty goes to a worker, as in linear: loops (``when`` is per item),
delegation, ``run_once`` and host-loop-bypassing actions, handlers, includes
and imports, a condition that calls a lookup (it would run twice), that raises
or that warns, and a condition that is true. On an ansible-core whose internals
it does not recognise, it is plain linear.

**Actions that need no worker.** An action plugin whose class sets
``RUNS_WITHOUT_WORKER = True`` declares that it writes nothing to stdout, keeps
no state between calls and blocks only on short requests (cluster-discovery's
``k8s_status``, ``osdk_metric``, ``requeue_after``...): this strategy runs its
task in the strategy process with ansible's own TaskExecutor, on a copy of the
task (TaskExecutor squashes and templates the task it runs, as a worker does on
its forked copy), and sends its result through the same queue. A burst of 200
objects of the runner's benchmark role used about a sixth less CPU: the worker's
fork and copy-on-write faults are gone, and the Kubernetes client that
kubernetes.core caches per process serves every host instead of one. What could
behave differently in a process shared with the play still takes a worker:
loops, ``until``, ``async``, ``timeout`` (a SIGALRM), ``become``, delegation,
``run_once``, handlers and a task ``environment``. kubernetes.core's ``k8s`` and
``k8s_info`` declare nothing, but they are what operator-sdk roles call on
every reconcile, and without ``wait`` or a URL ``src`` they only make a few
short requests: the strategy runs those tasks itself too (their module still
runs in a process of its own). In alternating runs of the benchmark's burst of
300 objects the runner used 150-176 against 193-205 ms of CPU per object.
"""

from __future__ import annotations

import re
from typing import Any

from ansible import constants as C
from ansible.playbook.handler import Handler
from ansible.plugins.loader import action_loader
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategyModule

from cluster_discovery_operator.ansible_plugins import kubeconfig_files
from cluster_discovery_operator.ansible_plugins.compiled_templates import install as install_compiled_templates
from cluster_discovery_operator.ansible_plugins.module_payloads import PayloadStore, store_from_environment
from cluster_discovery_operator.zygote import KUBERNETES_CLIENT, preload

try:
    from ansible._internal import _display_utils, _task
    from ansible._internal._errors import _error_utils
    from ansible._internal._templating._engine import TemplateEngine
    from ansible.executor.task_executor import TaskExecutor
    from ansible.executor.task_result import _RawTaskResult
    from ansible.plugins.loader import get_plugin_loader_namespace
except ImportError:  # another ansible-core: every task goes to a worker
    _RawTaskResult = None

DOCUMENTATION = r"""
name: cdo_linear
short_description: linear, deciding a false C(when) without a worker
description:
  - Runs exactly as M(ansible.builtin.linear), except that a task whose C(when) is false for a host is reported
    skipped by the strategy process instead of a forked worker, with the same result, events and stats.
  - Tasks with loops, delegation, C(run_once), handlers, includes, lookups in C(when), and conditions that are true,
    raise or warn go to a worker as in linear.
  - A task whose action plugin sets C(RUNS_WITHOUT_WORKER = True) runs in the strategy process, unless it has a loop,
    C(until), C(async), C(timeout), C(become), delegation, C(run_once) or an C(environment), or is a handler.
    So do M(kubernetes.core.k8s) and M(kubernetes.core.k8s_info) tasks that neither C(wait) nor fetch a URL C(src).
  - Imports the Kubernetes client and kubernetes.core's client code once, when installed, so that every forked worker
    starts with them.
  - Writes the inline certificates of the kubeconfig in C(K8S_AUTH_KUBECONFIG) to temporary files before the play,
    so that forked workers reuse them and they are removed when ansible-playbook ends, instead of each worker that
    reads the kubeconfig leaving a copy.
  - Where the environment names the cluster-discovery runner's payload store, uses the module payloads earlier runs
    built from the same sources, and keeps what the play built.
author: cluster-discovery
"""

_LOOKUP_CALL = re.compile(r"\b(lookup|query|q)\s*\(")
# kubernetes.core's k8s and k8s_info make a few short API requests, unless they wait for a condition (``wait``, up to
# ``wait_timeout``) or fetch their ``src`` from a URL. Roles written for operator-sdk call them on every reconcile;
# kubernetes.core ships no RUNS_WITHOUT_WORKER, so the strategy knows them. The module still runs in a process of its
# own: only the worker that would wait for it is spared.
_KUBERNETES_SHORT_REQUESTS = frozenset({"kubernetes.core.k8s", "kubernetes.core.k8s_info"})
_URL_SCHEMES = ("http://", "https://", "ftp://")
_SKIPPED_REASON = "Conditional result was False"

# The processes that use this strategy are the runner's, where one process renders each task for a whole batch.
install_compiled_templates()

# The Kubernetes client and kubernetes.core's client code, imported once here so that every worker forked from this
# process has them, as the module zygote gives them to module processes. Roles written for operator-sdk read objects
# with `query('kubernetes.core.k8s', ...)`, and a worker that ran one imported the client itself (kubernetes.core's
# module_utils compiled from source each time): about a third of a CPU-second per task, and several per Identity
# reconcile. The in-process actions (k8s_status, peer_sync...) import the same on their first use. Whatever is not
# installed is left out and costs nothing.
KUBERNETES_PRELOAD = (
    *KUBERNETES_CLIENT,
    "ansible_collections.kubernetes.core.plugins.module_utils.args_common",
    "ansible_collections.kubernetes.core.plugins.module_utils.k8s.client",
    "ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions",
    "ansible_collections.kubernetes.core.plugins.module_utils.k8s.resource",
)
preload(KUBERNETES_PRELOAD)

# The payloads of modules that the runner's earlier runs built (module_payloads.py): copied into this process's
# payload cache before the play's first task, and what the play built copied back after it.
_PAYLOADS: PayloadStore | None = store_from_environment()


class StrategyModule(LinearStrategyModule):  # type: ignore[misc]  # ansible-core ships no type information
    def run(self, iterator: Any, play_context: Any) -> Any:
        kubeconfig_files.write_for_workers()
        if _PAYLOADS is None:
            return super().run(iterator, play_context)
        _PAYLOADS.restore_quietly()
        try:
            return super().run(iterator, play_context)
        finally:
            _PAYLOADS.keep_quietly()

    def _queue_task(self, host: Any, task: Any, task_vars: dict[str, Any], play_context: Any) -> None:
        result = self._false_condition_result(host, task, task_vars, play_context)
        if result is not None:
            self._started(host, task, task_vars, play_context)
            self._send_result(host, task, result)
        elif self._runs_here(task):
            self._started(host, task, task_vars, play_context)
            # TaskExecutor squashes and templates the task it is given: a worker does it on its forked copy.
            own = task.copy(exclude_parent=True)
            own._parent = task._parent
            try:
                with _task.TaskContext(own):
                    result = TaskExecutor(
                        host,
                        own,
                        task_vars,
                        play_context,
                        self._loader,
                        get_plugin_loader_namespace(),
                        self._final_q,
                        self._variable_manager,
                    ).run()
            except Exception as ex:  # what a worker sends when its result cannot be had
                result = _error_utils.result_dict_from_exception(ex)
            self._send_result(host, own, result)
        else:
            super()._queue_task(host, task, task_vars, play_context)

    # What linear's _queue_task and the worker do around a result, minus the fork.
    def _started(self, host: Any, task: Any, task_vars: dict[str, Any], play_context: Any) -> None:
        self._queued_task_cache[(host.name, task._uuid)] = {
            "host": host,
            "task": task,
            "task_vars": task_vars,
            "play_context": play_context,
        }
        self._tqm.send_callback("v2_runner_on_start", host, task)

    def _send_result(self, host: Any, ran: Any, result: dict[str, Any]) -> None:
        self._final_q.send_task_result(
            _RawTaskResult(host=host, task=ran, return_data=result, task_fields=ran.dump_attrs())
        )
        self._pending_results += 1

    @staticmethod
    def _one_run_per_host(task: Any) -> bool:
        """What both shortcuts need: one plain execution of the task per host, on that host, outside handlers."""
        if _RawTaskResult is None or task.loop_with or task.loop is not None:
            return False
        return not (task.delegate_to or task.run_once or getattr(task, "implicit", False) or isinstance(task, Handler))

    @staticmethod
    def _action_class(task: Any) -> Any:
        try:
            return action_loader.get(task.action, class_only=True, collection_list=task.collections)
        except KeyError:
            return None

    def _runs_here(self, task: Any) -> bool:
        """True when the task's action declares it needs no worker and nothing about the task asks for one."""
        if not self._one_run_per_host(task) or task.until or task.async_val or task.timeout or task.become:
            return False
        environment = task.environment
        if any(environment if isinstance(environment, list) else [environment]):
            return False
        if getattr(self._action_class(task), "RUNS_WITHOUT_WORKER", False) is True:
            return True
        return self._short_kubernetes_request(task)

    @staticmethod
    def _short_kubernetes_request(task: Any) -> bool:
        if task.resolved_action not in _KUBERNETES_SHORT_REQUESTS:
            return False
        # Decided on the arguments as written: a templated `wait` may be true and a templated `src` a URL, so such
        # a task takes a worker.
        src = task.args.get("src")
        local_src = src is None or (isinstance(src, str) and "{{" not in src and not src.startswith(_URL_SCHEMES))
        return task.args.get("wait", False) is False and local_src

    def _decidable(self, task: Any) -> bool:
        if not task.when or not self._one_run_per_host(task):
            return False
        if task.action in (*C._ACTION_META, *C._ACTION_ALL_INCLUDES, *C._ACTION_ALL_PROPER_INCLUDE_IMPORT_TASKS):
            return False
        if any(isinstance(item, str) and _LOOKUP_CALL.search(item) for item in task.when):
            return False
        return not getattr(self._action_class(task), "BYPASS_HOST_LOOP", False)

    def _false_condition_result(
        self, host: Any, task: Any, task_vars: dict[str, Any], play_context: Any
    ) -> dict[str, Any] | None:
        """The worker's result for this task and host when its condition is false; None when a worker must decide."""
        try:
            if not self._decidable(task):
                return None
            # TaskExecutor.run: the job variables, with the search path _get_loop_items adds.
            job_vars = dict(task_vars)
            search_path = task.get_search_path()
            if self._loader.get_basedir() not in search_path:
                search_path.append(self._loader.get_basedir())
            job_vars["ansible_search_path"] = search_path
            templar = TemplateEngine(loader=self._loader, variables=job_vars)
            with _display_utils.DeferredWarningContext(variables=job_vars) as warnings:
                # TaskExecutor._execute_internal, up to the condition.
                tempvars = job_vars.copy()
                context = play_context.set_task_and_variable_override(task=task, variables=job_vars, templar=templar)
                context.post_validate(templar=templar)
                if not context.remote_addr:
                    context.remote_addr = host.address
                context.update_vars(tempvars)
                false_condition: dict[str, Any] = {}
                if task._resolve_conditional(task.when, tempvars, result_context=false_condition):
                    return None
                result: dict[str, Any] = {"changed": False, "skipped": True, "skip_reason": _SKIPPED_REASON}
                result |= false_condition
                task.update_result_no_log(templar, result)
            if warnings.get_warnings() or warnings.get_deprecation_warnings():
                return None
        except Exception:  # the worker raises it, in the task's result, as linear would (or internals moved)
            return None
        return result
