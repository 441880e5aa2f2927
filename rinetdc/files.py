"""Reading inputs and writing outputs without harm: bounded reads, writes that never
replace what they should not.

A configuration is read in chunks and refused as soon as it shows a NUL byte
or passes ``MAX_INPUT``, so ``/dev/zero`` or an endless pipe ends at once.  An
output is written by its kind: a regular file is replaced atomically (a
temporary file beside it, renamed over it) keeping its mode and, where we
may, its owner; a symbolic link is followed and its target replaced, the
link kept; a device or FIFO is written into, never replaced.  A failed write
leaves no temporary file behind.  Every trouble is a ``FileTrouble`` with a
message for the operator; the CLI makes it exit 2.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from typing import BinaryIO

from .visible import visible

__all__ = ["MAX_INPUT", "FileTrouble", "read_regular", "read_text", "write"]

MAX_INPUT = 64 * 1024 * 1024  # bytes; a rinetd.conf of 10,000 rules is about 0.5 MiB
_CHUNK = 1024 * 1024


class FileTrouble(Exception):
    """An input or output that cannot be used; the message says why."""


def _why(error: OSError) -> str:
    return error.strerror or str(error)


def _read_bounded(stream: BinaryIO, name: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(_CHUNK):
        if b"\0" in chunk:
            raise FileTrouble(f"{name} is a binary file, not a rinetd configuration")
        size += len(chunk)
        if size > MAX_INPUT:
            raise FileTrouble(f"{name} is larger than {MAX_INPUT // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def read_text(path: str) -> str:
    """The UTF-8 text of a file (standard input for ``-``)."""
    name = "standard input" if path == "-" else visible(path)
    try:
        if path == "-":
            data = _read_bounded(sys.stdin.buffer, name)
        else:
            with open(path, "rb") as handle:
                data = _read_bounded(handle, name)
    except OSError as error:
        raise FileTrouble(f"cannot read {name}: {_why(error)}") from None
    return _decoded(data, name)


def _decoded(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FileTrouble(f"{name} is not UTF-8 text (byte {error.start} is invalid)") from None


def read_regular(path: str) -> str:
    """The UTF-8 text of a regular file, for an included file: a FIFO, device or folder
    that a glob matched is refused without being opened (opening some devices acts,
    as /dev/watchdog arms the watchdog), and checked again once open (O_NONBLOCK)."""
    name = visible(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise FileTrouble(f"{name} is not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise FileTrouble(f"cannot read {name}: {_why(error)}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileTrouble(f"{name} is not a regular file")
        try:
            data = _read_bounded(handle, name)
        except OSError as error:
            raise FileTrouble(f"cannot read {name}: {_why(error)}") from None
    return _decoded(data, name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_into(path: str, data: bytes) -> None:
    """A device, FIFO or standard output: written as it is."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _replace(path: str, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """Atomically: readers see the old file or the new one, never a part."""
    folder, name = os.path.split(path)
    fd, temporary = tempfile.mkstemp(dir=folder or ".", prefix=f".{name}.")
    try:
        try:
            _write_all(fd, data)
            os.fchmod(fd, mode)
            if owner is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(fd, *owner)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write(path: str, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` (standard output for ``-``) by the kind of file it is (see
    above); a file made or replaced gets ``mode``, else keeps its own (0644 when new)."""
    if path == "-":
        try:
            sys.stdout.flush()
            _write_all(sys.stdout.fileno(), data)
        except OSError as error:
            raise FileTrouble(f"cannot write standard output: {_why(error)}") from None
        return
    if not path:
        raise FileTrouble("no output file named (an empty -o)")
    try:
        target = os.path.realpath(path)  # a link is followed: its target is replaced
        try:
            found = os.stat(target)
        except FileNotFoundError:
            _replace(target, data, 0o644 if mode is None else mode, None)
            return
        if stat.S_ISDIR(found.st_mode):
            raise FileTrouble(f"cannot write {visible(path)}: it is a directory")
        if stat.S_ISREG(found.st_mode):
            kept = stat.S_IMODE(found.st_mode) if mode is None else mode
            _replace(target, data, kept, (found.st_uid, found.st_gid))
        else:
            _write_into(target, data)
    except OSError as error:
        raise FileTrouble(f"cannot write {visible(path)}: {_why(error)}") from None
