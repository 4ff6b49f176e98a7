"""Fault injection (issue 17), user input: image files, manifests and catalogs.

Every case of the fault run is reproduced through the public CLI or API: a malformed file is one
skip with its reason, a bad manifest or catalog is one line naming the file and the fix (exit 2;
`catalog validate` keeps its documented exit 1), never a traceback. The mutation fuzz test of the
loader is tests/test_fuzz.py.
"""

import errno
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from proximity import load_sample, validate_catalog
from proximity.catalog import CatalogEntry, load_entry
from proximity.cli import app
from proximity.errors import CatalogError, LabelsError
from proximity.filters import Filters

from scripts import fuzz_loader


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
    return path


def _float_strip_offsets_tiff(path: Path) -> Path:
    """The fault run's crasher: an 8×8 TIFF whose StripOffsets (0x0111) is typed FLOAT."""
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    d = bytearray(path.read_bytes())
    end, entries = fuzz_loader._tiff_entries(d)
    for e in entries:
        if struct.unpack_from(end + "H", d, e)[0] == 0x0111:
            struct.pack_into(end + "H", d, e + 2, 11)
    path.write_bytes(bytes(d))
    return path


# --- image files ---------------------------------------------------------------------------------

def test_one_corrupt_tiff_does_not_abort_the_run(backbones, target_dir, tmp_path, fresh_cache):
    import shutil
    folder = shutil.copytree(target_dir, tmp_path / "imgs")
    bad = _float_strip_offsets_tiff(next(folder.iterdir()) / "strip_offsets_float.tif")
    res = _run("rank", folder, "--model", f"local-dir:{backbones['A']}", "-n", 500, "--no-control", "-f", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    skipped = {s["path"]: s["reason"] for s in d["sample"]["skipped"]}
    assert list(skipped) == [bad.relative_to(folder).as_posix()] and len(d["ranking"]) == 1
    assert "malformed file (TypeError" in skipped[bad.relative_to(folder).as_posix()]


def test_dangling_links_devices_and_unreadable_folders_are_named(tmp_path, monkeypatch):
    for i in range(3):
        _png(tmp_path / f"{i}.png", i)
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(tmp_path / "pipe.png")                      # opening it would block the loader forever
    _png(tmp_path / "locked" / "x.png")
    real = os.scandir

    def scandir(path="."):
        if Path(path).name == "locked":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path)
    monkeypatch.setattr(os, "scandir", scandir)
    s = load_sample(tmp_path, sample=None)
    reasons = {k.path: k.reason for k in s.skipped}
    assert s.n == 3 and "dangling symbolic link" in reasons["gone.png"]
    assert "not a regular file" in reasons["pipe.png"] and "Permission denied" in reasons["locked/"]


def test_a_really_unreadable_folder_is_named(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every folder whatever its mode: the monkeypatched test above covers this case")
    _png(tmp_path / "ok.png")
    _png(tmp_path / "locked" / "x.png")
    (tmp_path / "locked").chmod(0)
    try:
        s = load_sample(tmp_path, sample=None)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [k.path for k in s.skipped] == ["locked/"]


def test_library_warnings_become_one_line_naming_the_file(tmp_path, caplog, capfd, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1 << 20)
    pillow = libtiff = None                # a mutant decoded with Pillow's warnings, one that libtiff talks about
    for i, name, data, _ in fuzz_loader.cases(400, seed=0):
        p = tmp_path / "probe" / f"{i}.{name.split('-')[0].replace('jpeg', 'jpg')}"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        from proximity.imageio import read_image
        image, reason, notes = read_image(p)
        if image is not None and notes and any(n.startswith("UserWarning") for n in notes) and pillow is None:
            pillow = p
        if image is None and "[libtiff:" in reason and libtiff is None:
            libtiff = p
    assert pillow and libtiff
    folder = tmp_path / "imgs"
    for p in (pillow, libtiff, _png(tmp_path / "good.png")):
        folder.mkdir(exist_ok=True)
        (folder / p.name).write_bytes(p.read_bytes())
    from rich.logging import RichHandler                   # an earlier CLI test's handler would print our lines
    root = __import__("logging").getLogger()
    monkeypatch.setattr(root, "handlers", [h for h in root.handlers if not isinstance(h, RichHandler)])
    capfd.readouterr()
    with caplog.at_level("WARNING", logger="proximity"):
        s = load_sample(folder, sample=None)
    err = capfd.readouterr().err
    assert "PIL" not in err and "TIFF" not in err and err == ""
    noted = [r.getMessage() for r in caplog.records if "decoded with warnings" in r.getMessage()]
    assert len(noted) == 1 and pillow.name in noted[0] and "\n" not in noted[0]
    assert any(k.path == libtiff.name and "[libtiff:" in k.reason for k in s.skipped)


def test_decompression_bombs_warn_or_skip(tmp_path, monkeypatch, caplog):
    _png(tmp_path / "a.png")                               # 64 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)     # > limit: warning; > 2 × limit: error
    with caplog.at_level("WARNING", logger="proximity"):
        assert load_sample(tmp_path, sample=None).n == 1
    assert "DecompressionBombWarning" in caplog.text and "a.png" in caplog.text
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16)
    _png(tmp_path / "b.png")
    with pytest.raises(Exception, match=r"2 file\(s\) could not be decoded"):
        load_sample(tmp_path, sample=None)


def test_errors_that_are_not_about_one_file_stop_the_run(tmp_path, monkeypatch):
    import proximity.imageio as io_mod
    _png(tmp_path / "a.png")
    for exc in (MemoryError(), OSError(errno.EMFILE, "Too many open files")):
        def boom(*a, exc=exc, **k):
            raise exc
        monkeypatch.setattr(io_mod, "decode_image", boom)
        with pytest.raises(type(exc)):
            load_sample(tmp_path)


# --- manifests -----------------------------------------------------------------------------------

@pytest.fixture
def labelled(tmp_path):
    for i in range(6):
        _png(tmp_path / "imgs" / f"{i}.png", i)
    return tmp_path / "imgs"


def test_manifest_duplicates_are_used_once_and_conflicts_left_out(labelled, tmp_path, caplog):
    man = tmp_path / "m.csv"
    man.write_text("path,label\n0.png,a\n./0.png,a\n1.png,a\n2.png,b\n3.png,b\n4.png,a\n4.png,b\n5.png,b\n")
    with caplog.at_level("WARNING", logger="proximity"):
        s = load_sample(labelled, labels=man, sample=None)
    assert s.n == 5 and sorted(s.paths) == ["0.png", "1.png", "2.png", "3.png", "5.png"]
    assert [(k.path, "2 different labels (a, b): ambiguous" in k.reason) for k in s.skipped] == [("4.png", True)]
    assert "more than once with the same label (e.g. '0.png' on lines 2, 3)" in caplog.text
    assert "different labels (e.g. '4.png': 'a' on line 7, 'b' on line 8)" in caplog.text


def test_non_utf8_manifest_is_one_line(labelled, tmp_path):
    man = tmp_path / "m.csv"
    man.write_bytes("path,label\n0.png,caf\xe9\n".encode("latin-1"))
    with pytest.raises(LabelsError, match=r"is not UTF-8 text \(byte 0xe9 on line 2\)"):
        load_sample(labelled, labels=man)
    res = _run("rank", labelled, "--labels", man, "--model", f"local-dir:{tmp_path}")
    assert res.exit_code == 2 and "not UTF-8" in res.stderr and "Traceback" not in res.output


# --- catalogs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("body,field", [
    ("[input]\nsize = -5", "input.size"),
    ("[input]\nchannels = 0", "input.channels"),
    ("[input]\nstd = [0, 0, 0]", "input.std"),
    ("[input]\nchannels = 3\nmean = [0.5]", "input.mean"),
    ("[input]\nmean = [0.5]\nstd = [0.2, 0.2, 0.2]", "input.std"),
    ("[input]\nmean = [nan, 0.5, 0.5]", "input.mean"),
    ("[facts]\nparams_m = nan", "facts.params_m"),
    ("[facts]\nparams_m = -3", "facts.params_m"),
    ("[facts]\nimagenet_top1 = 250", "facts.imagenet_top1"),
    ("[facts]\nimagenet_top1 = inf", "facts.imagenet_top1"),
    ("[facts]\ndownloads = -1", "facts.downloads"),
])
def test_catalog_physical_ranges(tmp_path, body, field):
    (tmp_path / "m.toml").write_text(f'source = "timm:resnet18"\n{body}\n')
    with pytest.raises(CatalogError, match=f"field '{field}': must be|field '{field}': mean has"):
        load_entry(tmp_path / "m.toml")
    res = _run("catalog", "validate", tmp_path)
    assert res.exit_code == 1 and field in res.stderr and "ok" not in res.stdout


def test_catalog_local_dir_must_exist(tmp_path):
    (tmp_path / "m.toml").write_text('source = "local-dir:./not-built"\n')
    with pytest.raises(CatalogError, match="local-dir folder .*not-built' does not exist"):
        validate_catalog(tmp_path)


@pytest.mark.parametrize("params", [float("nan"), -3.0, None])
def test_unknown_or_impossible_sizes_never_pass_max_params(params):
    e = CatalogEntry(id="x", source="timm:x", params_m=params)
    why = Filters(max_params=1000.0).why_excluded(e)
    assert why == "parameter count unknown: cannot be checked against --max-params"


@pytest.mark.parametrize("make,says", [
    (lambda p: p.write_bytes('source = "timm:x"\nname = "caf\xe9"\n'.encode("latin-1")), "is not UTF-8 text"),
    (lambda p: p.symlink_to(p.parent / "gone.toml"), "is a symbolic link to"),
    (lambda p: p.mkdir(), "is a folder, not a TOML file"),
], ids=["latin-1", "dangling-link", "folder"])
def test_unreadable_catalog_files_are_one_line_naming_the_file(tmp_path, make, says):
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "good.toml").write_text('source = "timm:resnet18.a1_in1k"\n')
    make(cat / "bad.toml")
    res = _run("rank", tmp_path, "--catalog", cat)
    assert res.exit_code == 2 and says in res.stderr and "bad.toml" in res.stderr and "Traceback" not in res.output
    res = _run("catalog", "validate", cat)
    assert res.exit_code == 1 and says in res.stderr and "Traceback" not in res.output
