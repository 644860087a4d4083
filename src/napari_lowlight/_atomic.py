"""Files that appear complete or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


@contextlib.contextmanager
def replaced_atomically(path: Path, suffix: str):
    """Yield a new temporary file beside ``path`` that replaces ``path`` once the block succeeds.

    The writer fills the temporary file; it is flushed to disk and renamed over ``path``,
    so a crash, a kill or a full disk leaves ``path`` as it was. On an error the temporary
    file is removed. ``path`` ends up with the permissions of any plainly created file
    (0o666 narrowed by the umask), also when the writer recreates the file privately
    (``tempfile.mkstemp`` and safetensors make it 0o600).
    """
    for _ in range(100):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temporary name beside {str(path)!r}")
    try:
        mode = temporary.stat().st_mode & 0o777  # what the kernel's umask made of 0o666
        yield temporary
        os.chmod(temporary, mode)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
