"""Writing files so that a fault never loses or half-writes anything.

* :func:`atomic_write`: the bytes go to a temporary file *in the target's folder* (so the rename
  cannot cross a file system), are flushed to disk, and replace the target with ``os.replace``;
  any failure removes the temporary file and leaves the previous target untouched. Files are
  created with mode ``0o666`` minus the umask (``tempfile.mkstemp`` would give ``0o600``), or
  with the mode of the file they replace.
* :func:`check_output_path`: the checks a ``--output`` target gets *before* any work starts
  (missing folder, a folder as target, not writable), each failure a
  :class:`~proximity.errors.NotWritableError` that names the fix.
* :func:`probe_writable`: can a file be created in a folder (read-only mounts, ENOTDIR, ...)?
* :func:`remove_stale_tmp`: temporary files left behind by a killed process, past a minimum age.
* :func:`hash_file`: the sha256 of a file, read in chunks (weights can be gigabytes).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import time
from pathlib import Path

from .errors import NotWritableError

TMP_SUFFIX = ".tmp"
#: A temporary file older than this is left over from a killed process (a save takes seconds).
STALE_TMP_SECONDS = 15 * 60


def tmp_name(target: Path) -> Path:
    """A fresh temporary path next to ``target``: ``.<name>.<random>.tmp`` (hidden, same folder)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def create_tmp(target: Path) -> tuple[int, Path]:
    """Create a new temporary file next to ``target`` (mode 0o666 minus the umask); (fd, path)."""
    while True:
        path = tmp_name(target)
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), path
        except FileExistsError:  # pragma: no cover - 32 random bits
            continue


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write(target: str | Path, data: bytes | str) -> Path:
    """Replace ``target`` by ``data`` atomically (see the module docstring).

    Raises OSError (ENOSPC, EROFS, ...) with the previous ``target`` unchanged and no temporary
    file left behind.
    """
    target = Path(target)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = create_tmp(target)
    try:
        try:
            _write_all(fd, payload)
            os.fsync(fd)
            try:
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))  # keep the mode of the file replaced
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def write_in_place(target: Path, data: bytes | str) -> None:
    """Write to an existing non-regular file (``/dev/stdout``, a pipe) that cannot be replaced."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(target, os.O_WRONLY | os.O_APPEND)
    try:
        _write_all(fd, payload)
    finally:
        os.close(fd)


def write_output(target: str | Path, data: bytes | str) -> Path:
    """Write a result file: atomically for a regular file, in place for a device or a pipe."""
    target = Path(target)
    try:
        special = not stat.S_ISREG(os.stat(target).st_mode)
    except FileNotFoundError:
        special = False
    if special:
        write_in_place(target, data)
        return target
    return atomic_write(target, data)


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)       # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def follow_umask(folder: Path) -> None:
    """Give the files under ``folder`` mode 0o666 minus the umask (libraries that write through a
    private temporary file, such as safetensors, leave them 0o600)."""
    mode = 0o666 & ~current_umask()
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink():
            os.chmod(p, mode)


def probe_writable(folder: Path) -> str | None:
    """None when a file can be created in ``folder``, else why not (the OS's words)."""
    try:
        fd, tmp = create_tmp(folder / "probe")
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    tmp.unlink(missing_ok=True)
    return None


def check_output_path(target: str | Path, *, option: str = "--output") -> Path:
    """Check before any work that a result can be written to ``target``; raise NotWritableError.

    Refused: a folder as target, a missing or non-folder parent, a parent in which no file can be
    created (read-only file system, permissions), an existing file that is read-only. A device or a
    pipe (``/dev/stdout``) is accepted and written in place.
    """
    target = Path(target).expanduser()
    parent = target.parent if str(target.parent) else Path(".")
    fix = f"choose another {option}, or leave it out to print the result"
    if target.is_dir():
        raise NotWritableError(target, "it is a folder", f"Give a file name, e.g. {option} {target / 'ranking.json'}")
    if target.exists() and not target.is_file():
        return target                                  # a device or a pipe: written in place
    if not parent.exists():
        what = "does not exist" if not _under_a_file(parent) else "lies under a file, not a folder"
        raise NotWritableError(target, f"the folder '{parent}' {what}",
                               f"Create the folder first (mkdir -p '{parent}'), or {fix}")
    if not parent.is_dir():
        raise NotWritableError(target, f"'{parent}' is a file, not a folder", fix[0].upper() + fix[1:])
    why = probe_writable(parent)
    if why is not None:
        raise NotWritableError(target, f"no file can be created in '{parent}' ({why})", fix[0].upper() + fix[1:])
    if target.exists() and not os.access(target, os.W_OK):
        raise NotWritableError(target, "the file is read-only", f"Make it writable (chmod u+w), or {fix}")
    return target


def _under_a_file(path: Path) -> bool:
    return any(p.is_file() for p in path.parents)


def remove_stale_tmp(folder: Path, pattern: str = f"*{TMP_SUFFIX}", older_than: float = STALE_TMP_SECONDS) -> int:
    """Delete temporary files in ``folder`` older than ``older_than`` seconds; how many went.

    Younger ones may belong to a save in progress in another process, so they are kept.
    """
    now, removed = time.time(), 0
    try:
        candidates = list(folder.glob(pattern))
    except OSError:
        return 0
    for p in candidates:
        try:
            if now - p.lstat().st_mtime > older_than:
                p.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def hash_file(path: Path | str, h: hashlib._Hash | None = None) -> hashlib._Hash:
    """``h`` (a new sha256 by default) updated with the bytes of ``path``, read in 4 MiB chunks."""
    h = hashlib.sha256() if h is None else h
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h
