"""Fuzz proximity's image loader with mutated PNG, JPEG, TIFF, WebP and BMP files.

The loader's contract (:func:`proximity.imageio.read_image`): a file that cannot be decoded is
skipped with its reason; nothing a file contains makes it raise, and nothing reaches stderr raw.
This script breaks small valid images with a seeded mutator and checks that contract on each:

* byte-level: random bytes set, "interesting" values (0, 0xff, 0x7f, 0x80, 16/32-bit extremes)
  written, truncation, insertion, deletion and duplication of spans;
* TIFF-aware: the type of a random IFD entry changed (FLOAT, RATIONAL, DOUBLE, SRATIONAL, ASCII or
  any code 0-18 — StripOffsets typed FLOAT is what once crashed the loader), its count or its
  value/offset replaced.

The same ``--seed`` gives the same files. The test suite runs a bounded version
(``tests/test_fuzz.py``); before a release run a long one::

    python scripts/fuzz_loader.py --n 50000 [--seed 0] [--save-failures ./crashers]

Exit status 0 when the loader never raised nor wrote to stderr, 1 otherwise (the offending files
are written to ``--save-failures`` when given).
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import random
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from proximity.imageio import read_image  # noqa: E402

TIFF_TYPES = (2, 5, 10, 11, 12)            # ASCII, RATIONAL, SRATIONAL, FLOAT, DOUBLE: wrong for integer tags
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def seed_files() -> dict[str, bytes]:
    """Small valid files, one per format and flavour (8-bit grey/RGB, 16-bit, compressed TIFF)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (12, 9), dtype=np.uint8)
    grey16 = rng.integers(0, 65536, (8, 8), dtype=np.uint16)
    out = {}
    for name, arr, fmt, kw in (
        ("png-rgb", rgb, "PNG", {}), ("png-grey16", grey16, "PNG", {}), ("jpeg", rgb, "JPEG", {"quality": 80}),
        ("jpeg-grey", grey, "JPEG", {}), ("tiff-rgb", rgb, "TIFF", {}), ("tiff-grey16", grey16, "TIFF", {}),
        ("tiff-lzw", rgb, "TIFF", {"compression": "tiff_lzw"}),
        ("tiff-deflate", grey, "TIFF", {"compression": "tiff_adobe_deflate"}),
        ("webp", rgb, "WEBP", {"quality": 80}), ("webp-lossless", rgb, "WEBP", {"lossless": True}),
        ("bmp", rgb, "BMP", {}), ("bmp-grey", grey, "BMP", {}),
    ):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format=fmt, **kw)
        out[name] = buf.getvalue()
    return out


def _tiff_entries(d: bytes | bytearray) -> tuple[str, list[int]]:
    """Byte order and the offsets of the first IFD's 12-byte entries (empty when unreadable)."""
    if d[:2] not in (b"II", b"MM") or len(d) < 8:
        return "<", []
    end = "<" if d[:2] == b"II" else ">"
    off = struct.unpack_from(end + "I", d, 4)[0]
    if off + 2 > len(d):
        return end, []
    n = struct.unpack_from(end + "H", d, off)[0]
    return end, [off + 2 + 12 * i for i in range(n) if off + 14 + 12 * i <= len(d)]


class Mutator:
    """Seeded mutations of a file's bytes (see the module docstring)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def mutate(self, name: str, data: bytes) -> tuple[bytes, list[str]]:
        d, ops = bytearray(data), []
        for _ in range(self.rng.randint(1, 4)):
            if name.startswith("tiff") and self.rng.random() < 0.5:
                op = self._tiff(d)
            else:
                op = self._bytes(d)
            ops.append(op)
            if not d:
                d = bytearray(b"\0")
        return bytes(d), ops

    def _bytes(self, d: bytearray) -> str:
        r, n = self.rng, len(d)
        k = r.random()
        if k < 0.35:
            d[r.randrange(n)] = r.randrange(256)
            return "set-byte"
        if k < 0.55:
            v, width = r.choice(INTERESTING), r.choice((1, 2, 4))
            pos = r.randrange(n)
            d[pos:pos + width] = (v & ((1 << 8 * width) - 1)).to_bytes(width, r.choice(("little", "big")))
            return "interesting"
        if k < 0.7:
            del d[r.randrange(n):]
            return "truncate"
        if k < 0.8:
            pos = r.randrange(n + 1)
            d[pos:pos] = bytes(r.randrange(256) for _ in range(r.randint(1, 16)))
            return "insert"
        if k < 0.9:
            a = r.randrange(n)
            del d[a:a + r.randint(1, 16)]
            return "delete"
        a = r.randrange(n)
        pos = r.randrange(n + 1)
        d[pos:pos] = d[a:a + r.randint(1, 64)]
        return "duplicate"

    def _tiff(self, d: bytearray) -> str:
        end, entries = _tiff_entries(d)
        if not entries:
            return self._bytes(d)
        r, e = self.rng, self.rng.choice(entries)
        k = r.random()
        if k < 0.5:
            struct.pack_into(end + "H", d, e + 2, r.choice(TIFF_TYPES) if r.random() < 0.6 else r.randint(0, 18))
            return "tiff-type"
        if k < 0.75:
            struct.pack_into(end + "I", d, e + 4, r.choice(INTERESTING + (2, 3, 4, 64)))
            return "tiff-count"
        struct.pack_into(end + "I", d, e + 8, r.randrange(len(d) + 16) if r.random() < 0.7 else r.choice(INTERESTING))
        return "tiff-value"


def cases(n: int, seed: int = 0) -> Iterator[tuple[int, str, bytes, list[str]]]:
    """``n`` mutated files: (index, seed format, bytes, mutation ops), the same for the same seed."""
    seeds = seed_files()
    names = sorted(seeds)
    mut = Mutator(seed)
    for i in range(n):
        name = names[i % len(names)]
        data, ops = mut.mutate(name, seeds[name])
        yield i, name, data, ops


@dataclass
class Report:
    """What the loader did with the mutated files."""

    n: int = 0
    decoded: int = 0
    skipped: int = 0
    with_notes: int = 0
    raised: list[tuple[int, str, str]] = field(default_factory=list)     # (index, format, exception)
    reasons: collections.Counter = field(default_factory=collections.Counter)
    ops: collections.Counter = field(default_factory=collections.Counter)
    seconds: float = 0.0


def run(n: int, seed: int = 0, workdir: Path | None = None, save_failures: Path | None = None) -> Report:
    """Decode ``n`` mutated files with :func:`read_image`; never stops at an exception, records it."""
    rep = Report()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for i, name, data, ops in cases(n, seed):
            suffix = "." + name.split("-")[0].replace("jpeg", "jpg")
            path = Path(tmp) / f"case{suffix}"
            path.write_bytes(data)
            rep.n += 1
            rep.ops.update(ops)
            try:
                image, reason, notes = read_image(path, max_side=64)
            except Exception as exc:  # the bug this script looks for
                rep.raised.append((i, name, f"{exc.__class__.__name__}: {exc}"))
                if save_failures is not None:
                    save_failures.mkdir(parents=True, exist_ok=True)
                    (save_failures / f"{i:06d}-{name}{suffix}").write_bytes(data)
                continue
            if image is None:
                rep.skipped += 1
                rep.reasons[reason.removeprefix("cannot decode: ")[:40]] += 1
            else:
                rep.decoded += 1
            rep.with_notes += bool(notes)
    rep.seconds = time.perf_counter() - start
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50000, help="mutated files to decode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-pixels", type=int, default=None,
                    help="Pillow's decompression-bomb limit for the run (default: Pillow's own)")
    ap.add_argument("--save-failures", type=Path, default=None, help="write files that made the loader raise here")
    args = ap.parse_args(argv)
    if args.max_pixels:
        Image.MAX_IMAGE_PIXELS = args.max_pixels
    err_fd = os.dup(2)
    with tempfile.TemporaryFile() as raw:        # anything the loader lets reach stderr is a failure too
        os.dup2(raw.fileno(), 2)
        try:
            rep = run(args.n, args.seed, save_failures=args.save_failures)
        finally:
            os.dup2(err_fd, 2)
        raw.seek(0)
        leaked = raw.read().decode("utf-8", "replace")
    print(f"{rep.n} mutated files in {rep.seconds:.1f} s: {rep.decoded} decoded, {rep.skipped} skipped, "
          f"{rep.with_notes} with warnings, {len(rep.raised)} raised")
    print("mutations:", dict(rep.ops.most_common()))
    print("top skip reasons:", dict(rep.reasons.most_common(8)))
    for i, name, exc in rep.raised[:20]:
        print(f"  RAISED case {i} ({name}): {exc}")
    if leaked:
        print(f"  {len(leaked.splitlines())} line(s) reached stderr raw, e.g. {leaked.splitlines()[0]!r}")
    return 1 if rep.raised or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
