"""The on-disk cache of derived anatomy data (lumen meshes, distance grids), keyed by content hashes.

Location: the ``cache_dir`` argument if given, else ``$IR_ROBOT_ANATOMY_CACHE``, else
``$XDG_CACHE_HOME/ir_robot/anatomy``, else ``~/.cache/ir_robot/anatomy`` (read when called, never at
import). Files are named by a SHA-256 of everything they depend on (the tree's content hash, the
kind of data, its parameters and a format version), written to a temporary name and renamed into
place, so concurrent workers never read half a file. Deleting the directory is always safe.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

#: Bumped when a cached file's layout changes.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """Where cached anatomy data goes when no directory is passed (see the module doc)."""
    env = os.environ.get("IR_ROBOT_ANATOMY_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "ir_robot" / "anatomy"


def key(*parts: object) -> str:
    """A stable hex key for the given parts (their ``repr``) and the cache version."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for part in parts:
        h.update(b"|")
        h.update(repr(part).encode())
    return h.hexdigest()[:32]


def path_for(key: str, suffix: str, cache_dir: str | Path | None = None) -> Path:
    """The file for ``key`` in the cache directory (created if needed)."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}{suffix}"


def atomic_save(path: Path, writer: Callable[[Path], None]) -> None:
    """Write with ``writer(tmp)`` to a temporary file beside ``path``, then rename it into place."""
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
