"""Check a replay's output paths before it runs, and name a write that failed after it ran."""

from __future__ import annotations

import os
from pathlib import Path

from tools.errors import DomainError, InvalidInputError


class OutputError(DomainError):
    """A replay's files could not be written (the replay itself ran)."""


def check_output_path(path: Path, option: str, *, folder: bool) -> None:
    """Refuse an output folder (or file) that cannot be created or written.

    Raises:
        InvalidInputError: The path, or the nearest part of it that exists, is the wrong kind
            or not writable; the message names `option` and the path.
    """
    if folder and path.exists() and not path.is_dir():
        raise InvalidInputError(f"{option} {str(path)!r} is a file: give a folder")
    if not folder and path.is_dir():
        raise InvalidInputError(f"{option} {str(path)!r} is a folder: give a file path")
    start = path if folder else path.parent
    existing = next(p for p in (start, *start.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise InvalidInputError(
            f"{option} {str(path)!r}: {str(existing)!r} is a file, not a folder: "
            "give a path under a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"{option} {str(path)!r}: cannot write in {str(existing)!r}: give another path"
        )


def write_failed(exc: OSError, default: Path) -> OutputError:
    """Return the error naming the file a write could not create (`default` if unknown)."""
    where = exc.filename if exc.filename is not None else default
    return OutputError(
        f"could not write {str(where)!r}: {exc.strerror or exc}: "
        "give a writable --out folder and --jobs-csv file"
    )
