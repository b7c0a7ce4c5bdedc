"""Small filesystem helpers for writes that never leave half a file behind."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """The hex digest of a file's bytes, read in chunks (the one file-hashing helper).

    Args:
        path: the file.
        algorithm: a `hashlib` name ("sha256", "md5").
        chunk: bytes read at a time.

    Returns:
        The hex digest.
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file (artifact identity: models, ONNX files, deliveries)."""
    return file_digest(path, "sha256", chunk)


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """md5 of a file: DVC's content id for a tracked file (a dataset version's id)."""
    return file_digest(path, "md5", chunk)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same directory, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are read by other services
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_bytes(path, text.encode())


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux renameat2(RENAME_EXCHANGE); False if unsupported."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:  # glibc < 2.28
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL / ENOSYS / EOPNOTSUPP: the filesystem cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def fsync_tree(path: str | Path) -> None:
    """fsync every file and directory under `path` (and `path` itself), so a rename after it
    publishes content that is on disk."""
    path = Path(path)
    for p in sorted(path.rglob("*"), reverse=True) + [path]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_dir(src: str | Path, dst: str | Path) -> None:
    """Move the complete directory `src` to `dst`, replacing any directory there, atomically.

    Readers of `dst` see the old tree or the new one, never a mixture: an existing `dst` is
    swapped with `src` in one renameat2(RENAME_EXCHANGE) call and the old tree (now at `src`) is
    deleted afterwards. Where the filesystem cannot exchange, `dst` is first renamed aside; a
    crash between the two renames then leaves `dst` absent (never mixed) and the old tree beside
    it as `.<name>.old-*`.
    """
    import shutil

    src, dst = Path(src), Path(dst)
    fsync_tree(src)
    if not dst.exists():
        os.rename(src, dst)
    elif _renameat2_exchange(src, dst):
        shutil.rmtree(src)
    else:
        aside = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.rename(dst, aside)
        os.rename(src, dst)
        shutil.rmtree(aside)
    fd = os.open(dst.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
