"""safetensors files written the same way every time, and read back as what was recorded.

safetensors keeps a file's metadata in a hash map, so two saves of the same tensors may
order its keys differently and differ in bytes: identical runs would not give identical
files. `save_tensors` writes beside the target, rewrites the header with its keys sorted
(the same length: only the order changes), and renames the file into place, so that a
crash or a full disk never leaves half a file under the final name.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from livecli.errors import reason
from livecli.store import DamagedFile, fsync_replace, temporary_path

HEADER_LENGTH = 8
"""A safetensors file starts with its header's length: 8 bytes, little-endian."""


def sort_header(path: Path) -> None:
    """Rewrite the file's JSON header in place with its keys, metadata's included, sorted."""
    with open(path, "r+b") as handle:
        length = int.from_bytes(handle.read(HEADER_LENGTH), "little")
        raw = handle.read(length)
        text = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
        text += b" " * (length - len(text))  # the writer pads with spaces to keep the data aligned
        if len(text) != length:
            raise ValueError(f"{path}: the sorted safetensors header is longer than the written one")
        handle.seek(HEADER_LENGTH)
        handle.write(text)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` to `path`: byte-identical for identical tensors and metadata."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        try:
            save_file(tensors, tmp, metadata=metadata)
        except SafetensorError as exc:  # its I/O errors are not OSErrors: make them ones
            raise _as_os_error(exc, tmp) from None
        sort_header(tmp)
        fsync_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _as_os_error(exc: SafetensorError, path: Path) -> Exception:
    text = str(exc)
    for number in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
        if os.strerror(number) in text:
            return OSError(number, os.strerror(number), str(path))
    return exc


def load_tensors(path: Path, shapes: dict[str, list[int]], hint: str) -> dict[str, torch.Tensor]:
    """The tensors of a file the project wrote, each of `shapes` present with the shape its
    record says and finite: a damaged header (one declaring a huge length, say) or tensors
    that are not what was recorded are one error naming the file and `hint`."""
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DamagedFile(path, reason(exc), hint) from None
    for name, shape in shapes.items():
        if name not in tensors:
            raise DamagedFile(path, f"it holds no `{name}`", hint)
        if list(tensors[name].shape) != list(shape):
            raise DamagedFile(
                path, f"`{name}` is {list(tensors[name].shape)} where its record says {list(shape)}", hint
            )
        if tensors[name].is_floating_point() and not torch.isfinite(tensors[name]).all():
            raise DamagedFile(path, f"`{name}` holds values that are not finite", hint)
    return tensors
