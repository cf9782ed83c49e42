"""AnsiballZ payloads built once per operator process, not once per ansible-playbook process.

Before a module runs, ansible builds its payload: the module and every
module_util it imports, found by parsing each of them, zipped. ansible keeps
what it built in its local temporary folder, which is the ansible-playbook
process's own: every run of the operator built the payloads of its roles'
modules again, 0.12 to 0.23 CPU-seconds each (kubernetes.core's k8s the most)
and several per reconcile.

So the runner gives its runs a private folder (:data:`STORE_VARIABLE`), and the
strategy of its runs copies the payloads kept there into the run's cache before
the first task, and what the run built back into it after the play. A kept
payload is used only by a run that sees the very same sources: the folder is
named by :func:`sources_fingerprint`, a digest of ansible-core's and Python's
versions and the path, size and modification time of every file of ansible's
modules and module_utils and of each collection's ``plugins/modules`` and
``plugins/module_utils`` in the run's collection paths. Any change to one of
them is another folder, so nothing built from older sources is used. Payloads
of modules from a role's or a playbook's ``library`` (ansible's
``ansible.legacy`` names) are never kept: those folders are not in the
fingerprint.

The folder is the runner's own (made 0700 under an unpredictable name, removed
when it stops): its files are code that modules run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

STORE_VARIABLE = "CLUSTER_DISCOVERY_PAYLOAD_STORE"
"""The environment variable naming the runner's folder of kept payloads."""

KEPT_PREFIXES = ("ansible.modules.", "ansible_collections.")
"""Payload names (ansible's ``<module fqn>-<compression>-<extensions>``) whose sources the fingerprint covers."""

_PLUGIN_FOLDERS = ("modules", "module_utils")


def sources_fingerprint(ansible_package: Path, collection_paths: Iterable[str], *, version: str) -> str:
    """A digest of every file a payload can be built from (see the module docstring)."""
    digest = hashlib.sha256(f"{version}\0{sys.version}\0".encode())
    roots = [ansible_package / folder for folder in _PLUGIN_FOLDERS]
    for path in collection_paths:
        for collection in sorted(Path(path, "ansible_collections").glob("*/*")):
            roots += [collection / "plugins" / folder for folder in _PLUGIN_FOLDERS]
    for root in roots:
        digest.update(f"{root}\0".encode())
        for folder, subfolders, files in os.walk(root, followlinks=True):
            subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
            for name in sorted(files):
                if name.endswith((".pyc", ".pyo")):
                    continue
                path = os.path.join(folder, name)
                try:
                    found = os.stat(path)
                except OSError:
                    continue
                digest.update(f"{path}\0{found.st_size}\0{found.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def store_from_environment() -> PayloadStore | None:
    """The store of the runner that started this ansible-playbook process, for this run's sources; None without one.

    Called in the process, once ansible has its collection paths (a playbook's own ``collections`` folder among
    them). Anything unexpected means no store: the run builds its payloads as ansible does.
    """
    folder = os.environ.get(STORE_VARIABLE)
    if not folder:
        return None
    try:
        import ansible
        from ansible import constants as C
        from ansible.release import __version__
        from ansible.utils.collection_loader import AnsibleCollectionConfig

        fingerprint = sources_fingerprint(
            Path(ansible.__file__).parent, AnsibleCollectionConfig.collection_paths, version=__version__
        )
        # Where ansible-core's module_common keeps what it built (its _find_module_utils).
        cache = Path(C.DEFAULT_LOCAL_TMP, "ansiballz_cache")
    except Exception:  # another ansible-core
        return None
    return PayloadStore(Path(folder), fingerprint, cache)


class PayloadStore:
    """The runner's kept payloads for one fingerprint of the sources, and one run's payload cache."""

    def __init__(self, folder: Path, fingerprint: str, cache: Path) -> None:
        self.folder = folder / fingerprint
        self.cache = cache

    def restore_quietly(self) -> None:
        """:meth:`restore`; a failure only means the run builds its payloads itself."""
        with contextlib.suppress(OSError):
            self.restore()

    def keep_quietly(self) -> None:
        """:meth:`keep`; a failure only means later runs build them again."""
        with contextlib.suppress(OSError):
            self.keep()

    def restore(self) -> int:
        """Copy the kept payloads into the run's payload cache before its first task; the number copied."""
        if not self.folder.is_dir():
            return 0
        self.cache.mkdir(parents=True, exist_ok=True)
        return _copy_missing(self.folder, self.cache)

    def keep(self) -> int:
        """Copy what the run built into the store, for the runs after it; the number copied."""
        if not self.cache.is_dir():
            return 0
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _copy_missing(self.cache, self.folder)


def _copy_missing(source: Path, target: Path) -> int:
    """Copy the payloads of covered sources that ``target`` lacks (never a lock, never over one it has)."""
    copied = 0
    for payload in source.iterdir():
        name = payload.name
        if name.startswith(KEPT_PREFIXES) and not name.endswith(".lock") and not (target / name).exists():
            _copy_atomically(payload, target / name)
            copied += 1
    return copied


def _copy_atomically(source: Path, target: Path) -> None:
    """Another run may read ``target`` at any time: it appears whole or not at all."""
    handle, temporary = tempfile.mkstemp(prefix=".copy-", dir=target.parent)
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
