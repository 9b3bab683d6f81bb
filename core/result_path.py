"""Guarding a training's result_path: one training at a time, and checkpoint writes that fail cleanly.

Two trainings into one directory would interleave their logs and overwrite each other's checkpoints. The
training process holds an exclusive lock on `<result_path>/.lock` (flock, so it is released by the kernel
when the process ends, however it ends) and writes its pid there for the message a second run prints.
A lock left by a dead process is simply taken over; a training that ends removes it.
"""
import fcntl
import os

LOCK_NAME = ".lock"
_held = {}  # result_path -> open file descriptor: the lock lasts as long as this process


class ResultPathBusy(RuntimeError):
    """Another live process is training into the same result_path."""


def claim_result_path(result_path):
    """Lock `result_path` for this process until it exits or releases it; raise ResultPathBusy naming the process
    that holds it."""
    result_path = os.path.abspath(result_path)
    if result_path in _held:
        return
    os.makedirs(result_path, exist_ok=True)
    path = os.path.join(result_path, LOCK_NAME)
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 64).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise ResultPathBusy(f"{result_path} is being written by another training, process {holder}"
                                 f"{_command(holder)}; wait for it to end or choose another result_path") from None
        # A holder that was releasing may have removed the file we opened: then lock the one now at `path`.
        try:
            if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(descriptor)
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    _held[result_path] = descriptor


def release_result_path(result_path):
    """Let another training into `result_path` (when this process holds it), e.g. when a training ends."""
    result_path = os.path.abspath(result_path)
    descriptor = _held.pop(result_path, None)
    if descriptor is not None:
        os.remove(os.path.join(result_path, LOCK_NAME))  # before unlocking: a waiting claim then retries
        os.close(descriptor)  # closing the descriptor drops the flock


def process_alive(pid):
    """Whether process `pid` exists (a PermissionError means it does, owned by another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command(pid):
    """' (its command line)' when /proc shows it."""
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as f:
            command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, ValueError):
        return ""
    return f" ({command[:120]})" if command else ""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, quota); the file it would replace is left as it was."""
