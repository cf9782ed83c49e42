"""The run's kubeconfig certificates written once, by the ansible-playbook process, for all its workers.

The Kubernetes client copies a kubeconfig's inline certificates and key
(``certificate-authority-data``, ``client-certificate-data``,
``client-key-data``) to temporary files, reuses a file it wrote for the same
content, and removes them in an exit handler (``kube_config._temp_files``).
ansible's workers are forked and end without exit handlers, so each worker
that read the kubeconfig (a ``query('kubernetes.core.k8s', ...)`` lookup)
left its copies in ``$TMPDIR``: three files, the key among them, for each such
task of each reconcile of an operator that runs out of its cluster
(kubernetes-client/python#1236). Written here first, the files are inherited
by every worker, which reuses them, and removed when ansible-playbook ends.

Only the inline data of the context the run uses is written, as the client
would write it; nothing is authenticated, no credential plugin runs. A
kubeconfig this cannot read is left to the tasks to report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# (the kubeconfig section, the field) whose ``-data`` the client writes to a file.
_INLINE_FILES = (("cluster", "certificate-authority"), ("user", "client-certificate"), ("user", "client-key"))


def write_for_workers(environ: Mapping[str, str] = os.environ) -> int:
    """Write the inline certificate files of the run's kubeconfig (K8S_AUTH_KUBECONFIG and K8S_AUTH_CONTEXT, as
    kubernetes.core reads them) in this process; how many there were (0 in a cluster, without a kubeconfig)."""
    path = environ.get("K8S_AUTH_KUBECONFIG")
    if not path or os.pathsep in path:
        return 0
    try:
        from kubernetes.config import kube_config
    except ImportError:
        return 0
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        sections = _context_sections(config, environ.get("K8S_AUTH_CONTEXT"))
        written = 0
        for section, field in _INLINE_FILES:
            entry = sections.get(section)
            if isinstance(entry, dict) and entry.get(f"{field}-data"):
                kube_config.FileOrData(entry, field).as_file()
                written += 1
        return written
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError, kube_config.ConfigException):
        return 0


def _context_sections(config: Any, context_name: str | None) -> dict[str, Any]:
    """The ``cluster`` and ``user`` entries of the context (the current one when none is named)."""
    name = context_name or config.get("current-context")
    context = next((c.get("context") or {} for c in config.get("contexts") or [] if c.get("name") == name), {})
    return {
        section: next(
            (item.get(section) for item in config.get(f"{section}s") or [] if item.get("name") == context.get(section)),
            None,
        )
        for section in ("cluster", "user")
    }
