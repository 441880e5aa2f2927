"""Pack the runtime into one executable zipapp for hosts that have only Python.

The archive is byte-for-byte the same for the same runtime sources (fixed
timestamps, sorted entries), so deploying it again changes nothing.
"""

from __future__ import annotations

import io
import zipfile
from importlib import resources

__all__ = ["bundle"]

_MAIN = b"from rinetd_run.main import main\n\nmain()\n"
_STAMP = (1980, 1, 1, 0, 0, 0)


def _entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_STAMP)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def bundle(interpreter: str = "/usr/bin/env python3") -> bytes:
    """The bytes of ``rinetd-run.pyz``: a shebang line, then the zip of ``rinetd_run``."""
    package = resources.files("rinetd_run")
    sources = sorted(
        (item.name, item.read_bytes())
        for item in package.iterdir()
        if item.is_file() and item.name.endswith((".py", ".typed"))
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _entry(archive, "__main__.py", _MAIN)
        for name, data in sources:
            _entry(archive, f"rinetd_run/{name}", data)
    return f"#!{interpreter}\n".encode() + buffer.getvalue()
