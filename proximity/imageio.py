"""Finding and decoding image files: one bad file is that file's skip, never the run's end.

* :func:`discover_images`: image files under a folder, with the entries that cannot be used
  named (dangling symbolic links, devices or pipes with an image suffix, unreadable folders).
* :func:`decode_image`: one file to a compact native array; raises on a bad file.
* :func:`read_image`: the loader's call. Every exception raised while decoding one file
  (Pillow's ``OSError``/``SyntaxError``/``ValueError``, the ``TypeError`` and ``struct.error`` of
  malformed TIFF tags, ``DecompressionBombError``, ...) becomes that file's reason to be skipped;
  only errors that are not about one file (``MemoryError``, ``KeyboardInterrupt``) propagate.
  Python warnings raised while decoding (Pillow's "Corrupt EXIF data", ``DecompressionBombWarning``),
  what Pillow logs, and what libtiff prints on the process's stderr are collected and returned as
  notes, so that the caller reports them as one line naming the file.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger("proximity.data")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PROCESS_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})   # not about one file


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be used, with the reason (shown in every report)."""

    path: str
    reason: str


def discover_images(root: Path) -> tuple[list[Path], list[SkippedFile]]:
    """Image files under ``root`` (recursive, hidden files and folders skipped, symbolic links to
    folders not followed), sorted; and the entries with an image suffix that cannot be used."""
    files: list[Path] = []
    skipped: list[SkippedFile] = []

    def rel(p: str | Path) -> str:
        try:
            return Path(p).relative_to(root).as_posix()
        except ValueError:
            return str(p)

    def unreadable(exc: OSError) -> None:
        skipped.append(SkippedFile(rel(exc.filename or root) + "/", f"folder cannot be read: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            p = Path(dirpath) / name
            why = _unusable(p)
            if why is None:
                files.append(p)
            else:
                skipped.append(SkippedFile(rel(p), why))
    return sorted(files), sorted(skipped, key=lambda s: s.path)


def _unusable(p: Path) -> str | None:
    """None for a regular file (or a link to one), else why the entry cannot be read."""
    try:
        if p.is_file():
            return None
        if p.is_symlink():
            try:
                target = os.readlink(p)
            except OSError:
                target = "?"
            return f"dangling symbolic link (its target '{target}' does not exist)"
        return "not a regular file (a device, pipe or socket)"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"


def find_images(root: Path) -> list[Path]:
    """All image files under ``root`` (see :func:`discover_images`), sorted."""
    return discover_images(Path(root))[0]


def _head(path: Path, n: int = 26) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _png_16bit_colour(head: bytes) -> bool:
    """True for a 16-bit RGB/RGBA PNG (IHDR bit depth 16, colour type 2 or 6)."""
    return len(head) >= 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] in (2, 6)


def decode_image(path: Path, max_side: int = 1024) -> np.ndarray:
    """Decode one file to a compact native array (see :class:`proximity.data.Sample`).

    Raises whatever Pillow raises for a bad file (see :func:`read_image` for the safe call).
    Pillow reads 16-bit *colour* PNGs at 8 bits (their high bytes); proximity warns when it
    meets one (16-bit greyscale PNG and TIFF keep their 16 bits).
    """
    path = Path(path)
    if path.suffix.lower() == ".png" and _png_16bit_colour(_head(path)):
        logger.warning("%s is a 16-bit colour PNG: Pillow decodes it at 8 bits per channel.", path)
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        mode = im.mode
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode in ("1",):
            im = im.convert("L")
        elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGB")
        elif mode == "PA":
            im = im.convert("RGBA")
        if max(im.size) > max_side and im.mode in ("L", "LA", "RGB", "RGBA"):
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        arr = np.asarray(im)
    if arr.dtype not in (np.uint8, np.uint16, np.float32):
        if np.issubdtype(arr.dtype, np.integer) and arr.size and arr.min() >= 0 and arr.max() <= 65535:
            arr = arr.astype(np.uint16)
        else:
            arr = arr.astype(np.float32)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"decoded to an array of shape {arr.shape}, not an image")
    if max(arr.shape[:2]) > max_side:  # 16-bit / float: resize in float, keep dtype
        arr = _resize_native(arr, max_side)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return np.ascontiguousarray(arr)


def _resize_native(arr: np.ndarray, max_side: int) -> np.ndarray:
    h, w = arr.shape[:2]
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    chans = [arr] if arr.ndim == 2 else [arr[:, :, c] for c in range(arr.shape[2])]
    out = [np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize(size, Image.Resampling.BILINEAR))
           for c in chans]
    res = out[0] if arr.ndim == 2 else np.stack(out, axis=2)
    if arr.dtype == np.uint16:
        res = np.clip(np.rint(res), 0, 65535).astype(np.uint16)
    return res.astype(arr.dtype, copy=False)


def read_image(path: Path, max_side: int = 1024) -> tuple[np.ndarray | None, str, list[str]]:
    """Decode one file without ever raising for a problem of that file.

    Returns ``(image, "", notes)`` on success and ``(None, reason, notes)`` when the file cannot
    be used; ``notes`` are the warnings (Pillow's, libtiff's) met while decoding, one string each.
    Raises only what is not about this file: MemoryError, an OSError for too many open files or
    no memory (and KeyboardInterrupt / SystemExit, which are not Exceptions).
    """
    caught: list[warnings.WarningMessage] = []
    native: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught, _pillow_log(native):
            warnings.simplefilter("always")
            with _native_stderr(native, enabled=_head(path, 4) in _TIFF_MAGIC):
                image = decode_image(path, max_side)
        return image, "", _notes(caught, native)
    except MemoryError:
        raise
    except OSError as exc:
        if exc.errno in _PROCESS_ERRNOS:
            raise
        return None, _reason(exc, native), _notes(caught, native)
    except Exception as exc:  # anything else that one file can make Pillow raise
        return None, _reason(exc, native), _notes(caught, native)


def _notes(caught: list, native: list[str]) -> list[str]:
    return [_one_line(f"{w.category.__name__}: {w.message}") for w in caught] + native


def _reason(exc: BaseException, native: list[str]) -> str:
    text = _one_line(str(exc)) or exc.__class__.__name__
    if isinstance(exc, (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)):
        reason = f"cannot decode: {text}"
    elif isinstance(exc, Warning):          # a warning turned into an error (python -W error)
        reason = f"cannot decode: {exc.__class__.__name__}: {text}"
    else:                                   # TypeError, struct.error, IndexError, ... from malformed tags
        reason = f"cannot decode: malformed file ({exc.__class__.__name__}: {text})"
    if native:
        reason += f" [{native[0]}]"
    return reason[:400]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Collect(logging.Handler):
    def __init__(self, notes: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append("Pillow: " + _one_line(record.getMessage()))


@contextmanager
def _pillow_log(notes: list[str]) -> Iterator[None]:
    """Collect what Pillow logs (e.g. TiffImagePlugin's "More samples per pixel than can be decoded")
    into ``notes`` instead of letting it reach the user's log handlers without the file's name."""
    log = logging.getLogger("PIL")
    handler, propagate = _Collect(notes), log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


@contextmanager
def _native_stderr(notes: list[str], *, enabled: bool = True) -> Iterator[None]:
    """Collect what C libraries print on file descriptor 2 (libtiff's warnings and errors) into
    ``notes``, one per line, instead of letting it reach the terminal raw. Lines with terminal
    control characters (another thread's progress bar) are written back as they were."""
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            passthrough = []
            for line in text.splitlines(keepends=True):
                if "\x1b" in line or "\r" in line:
                    passthrough.append(line)
                elif line.strip():
                    notes.append("libtiff: " + _one_line(line))
            if passthrough:
                os.write(2, "".join(passthrough).encode())
