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
payload is used only by a run that sees the very same sources, in two parts:

- the store is split by :func:`base_fingerprint`, a digest of ansible-core's
  and Python's versions, the path, size and modification time of every file of
  ansible's modules and module_utils, and which collections the run's
  collection paths hold, each with the folder ansible takes it from. Adding,
  removing or shadowing a collection is another folder: a module_util that a
  module imports only when it can (in ``try``) is then looked for again;
- within it, a payload is kept under the digests of the collections its zip
  holds files of (:func:`collection_digest`: the path, size and modification
  time of every file of the collection's ``plugins/modules`` and
  ``plugins/module_utils``), and the names of those collections beside it.

A run digests only the collections its kept payloads hold (kubernetes.core and
cluster-discovery's own), not every installed one: where the ``ansible``
package's hundred collections are installed, digesting them all cost about
60 ms of CPU a run. Any change to a source a payload holds is another digest,
so nothing built from older sources is used. Payloads of modules from a role's
or a playbook's ``library`` (ansible's ``ansible.legacy`` names) are never
kept: those folders are not digested.

The folder is the runner's own (made 0700 under an unpredictable name, removed
when it stops): its files are code that modules run.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import pickle
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

STORE_VARIABLE = "CLUSTER_DISCOVERY_PAYLOAD_STORE"
"""The environment variable naming the runner's folder of kept payloads."""

KEPT_PREFIXES = ("ansible.modules.", "ansible_collections.")
"""Payload names (ansible's ``<module fqn>-<compression>-<extensions>``) whose sources the digests cover."""

_PLUGIN_FOLDERS = ("modules", "module_utils")
_COLLECTIONS_SUFFIX = ".collections"
"""Beside a kept payload's name: the collections whose digests key it (a JSON list)."""


def installed_collections(collection_paths: Iterable[str]) -> dict[str, Path]:
    """Each collection (``namespace.name``) the paths hold, with the folder of the first path that holds it.

    The first wins, as ansible's collection loader resolves ``ansible_collections.<namespace>.<name>``.
    """
    found: dict[str, Path] = {}
    for path in collection_paths:
        for collection in sorted(Path(path, "ansible_collections").glob("*/*")):
            if collection.is_dir():
                found.setdefault(f"{collection.parent.name}.{collection.name}", collection)
    return found


def base_fingerprint(ansible_package: Path, collections: Mapping[str, Path], *, version: str) -> str:
    """A digest of the versions, ansible's own module sources and which collections are found where."""
    digest = hashlib.sha256(f"{version}\0{sys.version}\0".encode())
    for folder in _PLUGIN_FOLDERS:
        _digest_files(digest, ansible_package / folder)
    for name, path in sorted(collections.items()):
        digest.update(f"collection\0{name}\0{path}\0".encode())
    return digest.hexdigest()


def collection_digest(collection: Path) -> str:
    """A digest of every file a payload can hold from ``collection``: its modules and module_utils."""
    digest = hashlib.sha256()
    for folder in _PLUGIN_FOLDERS:
        _digest_files(digest, collection / "plugins" / folder)
    return digest.hexdigest()


def _digest_files(digest: hashlib._Hash, root: Path) -> None:
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


def payload_collections(payload: Path) -> list[str] | None:
    """The collections (``namespace.name``) whose files the payload's zip holds; None if it cannot be read.

    The payload is ansible-core's cache entry (module_common's ``_CachedModule``, pickled by the very
    ansible-playbook process that calls this, in its own temporary folder): its ``zip_data`` is the
    base64 of the AnsiballZ zip, whose names are ``ansible_collections/<namespace>/<name>/...``.
    """
    try:
        with payload.open("rb") as handle:
            cached = pickle.load(handle)
        names = zipfile.ZipFile(io.BytesIO(base64.b64decode(cached.zip_data))).namelist()
    except Exception:  # another ansible-core's format: the payload is not kept
        return None
    found = set()
    for name in names:
        parts = name.split("/")
        if len(parts) > 3 and parts[0] == "ansible_collections":
            found.add(f"{parts[1]}.{parts[2]}")
    return sorted(found)


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

        collections = installed_collections(AnsibleCollectionConfig.collection_paths)
        base = base_fingerprint(Path(ansible.__file__).parent, collections, version=__version__)
        # Where ansible-core's module_common keeps what it built (its _find_module_utils).
        cache = Path(C.DEFAULT_LOCAL_TMP, "ansiballz_cache")
    except Exception:  # another ansible-core
        return None
    return PayloadStore(Path(folder), base, cache, collections)


class PayloadStore:
    """The runner's kept payloads for one base fingerprint, and one run's payload cache."""

    def __init__(
        self,
        folder: Path,
        base: str,
        cache: Path,
        collections: Mapping[str, Path],
        *,
        digest: Callable[[Path], str] = collection_digest,
        collections_of: Callable[[Path], list[str] | None] = payload_collections,
    ) -> None:
        self.folder = folder / base
        self.cache = cache
        self._collections = collections
        self._digest = digest
        self._collections_of = collections_of
        self._digests: dict[str, str] = {}

    def restore_quietly(self) -> None:
        """:meth:`restore`; a failure only means the run builds its payloads itself."""
        with contextlib.suppress(OSError, ValueError):
            self.restore()

    def keep_quietly(self) -> None:
        """:meth:`keep`; a failure only means later runs build them again."""
        with contextlib.suppress(OSError, ValueError):
            self.keep()

    def restore(self) -> int:
        """Copy the kept payloads of unchanged sources into the run's payload cache before its first task; the
        number copied."""
        if not self.folder.is_dir():
            return 0
        copied = 0
        for listing in self.folder.glob(f"*{_COLLECTIONS_SUFFIX}"):
            name = listing.name.removesuffix(_COLLECTIONS_SUFFIX)
            kept = self._kept(name)
            if kept is None or (self.cache / name).exists():
                continue
            self.cache.mkdir(parents=True, exist_ok=True)
            _copy_atomically(kept, self.cache / name)
            copied += 1
        return copied

    def keep(self) -> int:
        """Copy what the run built into the store, for the runs after it; the number copied."""
        if not self.cache.is_dir():
            return 0
        copied = 0
        for payload in self.cache.iterdir():
            name = payload.name
            # What restore() copied, or another run kept since, is known by its listing: its zip is not read.
            if not name.startswith(KEPT_PREFIXES) or name.endswith(".lock") or self._kept(name) is not None:
                continue
            collections = self._collections_of(payload)
            key = self._key(collections) if collections is not None else None
            if key is None or (self.folder / key / name).exists():
                continue
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            (self.folder / key).mkdir(exist_ok=True, mode=0o700)
            _copy_atomically(payload, self.folder / key / name)
            _write_atomically(self.folder / f"{name}{_COLLECTIONS_SUFFIX}", json.dumps(collections).encode())
            copied += 1
        return copied

    def _kept(self, name: str) -> Path | None:
        """The kept payload ``name`` built from the sources as they are now, as its listing says; None if none."""
        try:
            collections = json.loads((self.folder / f"{name}{_COLLECTIONS_SUFFIX}").read_text())
        except FileNotFoundError:
            return None
        key = self._key(collections)
        kept = self.folder / key / name if key is not None else None
        return kept if kept is not None and kept.is_file() else None

    def _key(self, collections: list[str]) -> str | None:
        """The digest of ``collections``' sources as found now; None if one is no longer installed."""
        digest = hashlib.sha256()
        for name in sorted(collections):
            path = self._collections.get(name)
            if path is None:
                return None
            if name not in self._digests:
                self._digests[name] = self._digest(path)
            digest.update(f"{name}\0{self._digests[name]}\0".encode())
        return digest.hexdigest()


def _copy_atomically(source: Path, target: Path) -> None:
    _write_atomically(target, source.read_bytes())  # a payload is a few hundred KB at most


def _write_atomically(target: Path, data: bytes) -> None:
    """Another run may read ``target`` at any time: it appears whole or not at all."""
    handle, temporary = tempfile.mkstemp(prefix=".write-", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
