"""Real file systems that misbehave, for tests: a read-only view of a folder and a tiny disk that fills up.

Both need the right to mount (root in a container, as on CI); where it is missing they raise
:class:`Unavailable` and a test skips itself. Tests that must always run inject the same
``OSError`` at the write site instead.
"""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class Unavailable(RuntimeError):
    """This machine does not let us mount (not root, no mount namespace)."""


def _mount(*args: str) -> None:
    try:
        subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"cannot mount here: {exc}") from exc


def _unmount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


@contextmanager
def read_only_view(source: Path, target: Path) -> Iterator[Path]:
    """``target`` shows ``source``'s files, read-only (a read-only bind mount); even root cannot write there.

    Raises:
        Unavailable: mounting is not permitted here.
    """
    target.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(source), str(target))
    try:
        _mount("-o", "remount,bind,ro", str(target))
    except Unavailable:
        _unmount(target)
        raise
    try:
        yield target
    finally:
        _unmount(target)


@contextmanager
def small_disk(target: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` KiB at ``target``: writes past it fail with ENOSPC, as on a full disk.

    Raises:
        Unavailable: mounting is not permitted here.
    """
    target.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(target))
    try:
        yield target
    finally:
        _unmount(target)
