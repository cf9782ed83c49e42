"""An action that declares it needs no worker: echoes ``msg``, fails or raises when asked."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    RUNS_WITHOUT_WORKER = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = self._task.args
        if args.get("raise"):
            raise RuntimeError(f"asked to raise: {args['raise']}")
        result.update(changed=True, msg=args.get("msg", ""))
        if args.get("fail"):
            result.update(failed=True, msg=f"asked to fail: {args['msg']}")
        return result
