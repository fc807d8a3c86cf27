"""Writing files safely: checks that an output can be written *before* the work that produces it,
atomic writes with the umask's permissions, and the lock that keeps two training runs out of one
folder.

* :func:`check_output_file` / :func:`check_output_dir`: a folder where a file is wanted, a parent
  that is a file, a read-only place or a full disk are reported up front, naming the flag.
* :func:`atomic_write`: write to a temporary file in the target's folder, fsync, rename over the
  target.  A crash mid-write leaves the old file whole; a full disk is reported as such.
* :class:`RunLock`: ``{out_dir}/.lock``, held for a training run's life (``fcntl.flock``, so a
  killed run never leaves it held).
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["OutputError", "RunLockedError", "check_output_file", "check_output_dir", "atomic_write",
           "remove_stale_temporaries", "RunLock"]


class OutputError(OSError):
    """An output that cannot be written; the message names the flag (or file) and what to do."""


class RunLockedError(OutputError):
    """Another training run holds the output folder."""


def _probe(folder: Path, what: str) -> None:
    """Create and remove a small file in ``folder``: the only test that also catches read-only
    mounts, root on a read-only file system, and a full disk."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=folder)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        reason = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                  errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                  errno.EDQUOT: "the disk quota is used up"}.get(err.errno, err.strerror or str(err))
        raise OutputError(err.errno, f"{what}: cannot write in {folder} ({reason}); free space, fix the "
                                     "permissions, or choose another location.") from None


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """``path`` is, or could be made, a writable folder: its nearest existing folder takes a test
    write.  Nothing is created (the writer makes the folders when it writes)."""
    path = Path(path)
    what = f"{flag} {path}"
    for existing in (path, *path.parents):
        if existing.exists():
            break
    if not existing.is_dir():
        raise OutputError(errno.ENOTDIR, f"{what}: {existing} is a file, not a folder; choose another location.")
    _probe(existing, what)
    return path


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """``path`` can be written as a file: not a folder, and its folder writable (or creatable)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(errno.EISDIR, f"{flag} {path} is a folder; give a file name inside it, e.g. "
                                        f"{path / ('out' + (path.suffix or '.png'))}.")
    check_output_dir(path.parent, f"{flag} {path}:")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(errno.EACCES, f"{flag} {path} exists and is read-only; choose another file name.")
    return path


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable, *, binary: bool = True) -> Path:
    """Call ``write(f)`` on a temporary file next to ``path``, flush and fsync it, give it the
    umask's permissions (``mkstemp`` makes it 0600), and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if _disk_full(err):
            raise OutputError(errno.ENOSPC, f"no space left on the device while writing {path}; nothing was "
                                            "replaced. Free some space, or choose another location.") from None
        raise
    return path


def _disk_full(err: BaseException) -> bool:
    """ENOSPC, or torch's "unexpected pos" (its zip writer's way of saying the write fell short)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(err, RuntimeError) and "unexpected pos" in str(err)


def remove_stale_temporaries(folder: str | os.PathLike, name: str) -> list[Path]:
    """Delete ``.{name}.*.tmp`` left in ``folder`` by a run killed mid-save (call it only while
    holding the folder's :class:`RunLock`, so no live run is writing them).  Returns what went."""
    removed = []
    for stale in Path(folder).glob(f".{name}.*.tmp"):
        try:
            stale.unlink()
            removed.append(stale)
        except FileNotFoundError:
            pass
    return removed


class RunLock:
    """An exclusive lock on ``{folder}/.lock`` for as long as a run writes there.  The second run
    into the same folder gets :class:`RunLockedError` with the holder's process id.  Re-entrant
    within one object; released on :meth:`release`, and by the OS when the process dies."""

    def __init__(self, folder: str | os.PathLike, flag: str = "--out-dir"):
        self.path, self.flag = Path(folder) / ".lock", flag
        self._fd: int | None = None
        self._depth = 0

    def acquire(self) -> "RunLock":
        if self._fd is not None:
            self._depth += 1
            return self
        try:
            import fcntl
        except ImportError:            # Windows: no advisory locks; runs are not guarded there
            self._depth += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunLockedError(errno.EBUSY, f"{self.flag} {self.path.parent} is in use by another training "
                                                  f"run (process {holder}); wait for it to finish, or choose another "
                                                  f"{self.flag}.") from None
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break              # the lock is on the file that is there now
            except FileNotFoundError:
                pass
            os.close(fd)               # the holder removed it as we opened it: try again
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd, self._depth = fd, 1
        return self

    def release(self) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth or self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink()         # while still held, so no one else's lock file is removed
        except FileNotFoundError:
            pass
        os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
