"""The loader never raises on a malformed file: a seeded mutation fuzz test, bounded by count.

The long run for releases is ``python scripts/fuzz_loader.py --n 50000``.
"""

import logging
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scripts import fuzz_loader

from proximity import load_sample  # noqa: E402
from proximity.imageio import read_image  # noqa: E402

N_CASES = 3000          # a few seconds; the count, not the clock, bounds the test


@pytest.fixture
def small_bomb_limit(monkeypatch):
    """Pillow's decompression-bomb limit lowered to 1 Mpx, so mutated sizes stay cheap to decode
    (and both the bomb warning and the bomb error are exercised)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1 << 20)


def test_mutated_files_never_make_the_loader_raise_or_write_to_stderr(tmp_path, capfd, small_bomb_limit, monkeypatch):
    root = logging.getLogger()                                # a log handler on stderr, as the CLI has
    monkeypatch.setattr(root, "handlers", [logging.StreamHandler(sys.stderr)])
    rep = fuzz_loader.run(N_CASES, seed=0, workdir=tmp_path)
    assert rep.raised == [], rep.raised[:5]
    assert capfd.readouterr().err == ""                       # Pillow's logs and libtiff's messages became notes
    assert rep.n == N_CASES and rep.decoded > 100 and rep.skipped > 100 and rep.with_notes > 0
    assert rep.ops["tiff-type"] > 100                          # the mutation that once crashed the loader
    assert any(r.startswith("malformed file (TypeError") for r in rep.reasons)


def test_the_mutator_is_seeded():
    a = [d for _, _, d, _ in fuzz_loader.cases(50, seed=3)]
    assert a == [d for _, _, d, _ in fuzz_loader.cases(50, seed=3)]
    assert a != [d for _, _, d, _ in fuzz_loader.cases(50, seed=4)]


def _tiff_with_strip_offsets_typed(tmp_path, type_code: int) -> Path:
    p = tmp_path / f"strip-{type_code}.tif"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(p)
    d = bytearray(p.read_bytes())
    end, entries = fuzz_loader._tiff_entries(d)
    for e in entries:
        if struct.unpack_from(end + "H", d, e)[0] == 0x0111:           # StripOffsets
            struct.pack_into(end + "H", d, e + 2, type_code)
    p.write_bytes(bytes(d))
    return p


@pytest.mark.parametrize("type_code,name",
                         [(11, "FLOAT"), (5, "RATIONAL"), (10, "SRATIONAL"), (12, "DOUBLE"), (2, "ASCII")])
def test_strip_offsets_of_the_wrong_type_is_a_skip_with_its_reason(tmp_path, type_code, name):
    image, reason, _ = read_image(_tiff_with_strip_offsets_typed(tmp_path, type_code))
    assert image is None and reason.startswith("cannot decode"), (name, reason)


def test_a_folder_of_mutants_loads_and_names_every_skip(tmp_path, small_bomb_limit):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, name, data, _ in fuzz_loader.cases(240, seed=1):
        (folder / f"{i:03d}.{name.split('-')[0].replace('jpeg', 'jpg')}").write_bytes(data)
    s = load_sample(folder, sample=None)
    assert s.n + len(s.skipped) == 240 and s.n > 0
    assert all(k.reason.startswith("cannot decode") for k in s.skipped)
