import numpy as np
import pytest
from PIL import Image

from proximity import load_sample, sample_from_arrays
from proximity.data import decode_image, find_images, to_float
from proximity.errors import EmptySampleError, InvalidParameterError, LabelsError


def _png(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls, n in (("cat", 30), ("dog", 10)):
        for i in range(n):
            _png(tmp_path / "imgs" / cls / f"{i}.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    return tmp_path / "imgs"


def test_discovery_is_recursive_and_skips_hidden_and_non_images(tmp_path):
    a = np.zeros((4, 4), np.uint8)
    for rel in ("a.png", "x/b.JPG", "x/y/c.tiff", ".hidden/d.png", "x/.e.png"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(p, format="PNG" if p.suffix.lower() == ".png"
                                else ("JPEG" if p.suffix.lower() == ".jpg" else "TIFF"))
    (tmp_path / "notes.txt").write_text("hi")
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)] == ["a.png", "x/b.JPG", "x/y/c.tiff"]


def test_labels_from_folders_and_stratified_seeded_sample(folder):
    s = load_sample(folder, sample=20, seed=3)
    assert s.labels_source == "folders" and s.class_names == ["cat", "dog"]
    counts = np.bincount(s.labels)
    assert counts.tolist() == [15, 5]           # proportional to 30:10
    assert load_sample(folder, sample=20, seed=3).paths == s.paths
    assert load_sample(folder, sample=20, seed=4).paths != s.paths
    assert s.fingerprint == load_sample(folder, sample=20, seed=3).fingerprint


def test_small_class_keeps_at_least_one(folder):
    s = load_sample(folder, sample=2)
    assert sorted(np.bincount(s.labels).tolist()) == [1, 1]


def test_labels_none_and_mixed_layout(folder):
    assert load_sample(folder, labels="none").labels is None
    _png(folder / "loose.png", np.zeros((4, 4), np.uint8))
    s = load_sample(folder)
    assert s.labels is None and "directly in the folder" in s.labels_note
    with pytest.raises(LabelsError, match="--labels folders needs every image"):
        load_sample(folder, labels="folders")


def test_csv_manifest(folder, tmp_path):
    man = tmp_path / "labels.csv"
    man.write_text("path,label\ncat/0.png,x\ncat/1.png,y\ndog/0.png,y\nmissing.png,x\n")
    s = load_sample(folder, labels=man)
    assert s.n == 3 and s.class_names == ["x", "y"] and s.labels_source.startswith("manifest:")
    assert [k.path for k in s.skipped] == ["missing.png"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\na,b\n")
    with pytest.raises(LabelsError, match="columns 'path' and 'label'"):
        load_sample(folder, labels=bad)
    with pytest.raises(LabelsError, match="does not exist"):
        load_sample(folder, labels=tmp_path / "nope.csv")


def test_corrupt_file_is_skipped_named_and_replaced(folder):
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    s = load_sample(folder, sample=None)
    assert s.n == 40 and [k.path for k in s.skipped] == ["cat/broken.png"]
    assert "cannot decode" in s.skipped[0].reason
    for i in range(10):  # dog: 10 readable + 10 broken files
        (folder / "dog" / f"zz{i}.jpg").write_bytes(b"\xff\xd8 broken")
    s = load_sample(folder, sample=20)
    assert np.bincount(s.labels).tolist() == [12, 8]     # quotas 30:20 of 20, met despite the broken files
    assert any(k.path.startswith("dog/zz") for k in s.skipped)
    assert all(not p.startswith("dog/zz") for p in s.paths)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(EmptySampleError, match="No readable images"):
        load_sample(tmp_path)
    with pytest.raises(EmptySampleError, match="not a folder"):
        load_sample(tmp_path / "nope")
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(EmptySampleError, match=r"1 file\(s\) could not be decoded"):
        load_sample(tmp_path)
    with pytest.raises(InvalidParameterError, match="'sample' parameter of load_sample must be an int"):
        load_sample(tmp_path, sample=0)


def test_16bit_png_keeps_precision_and_is_windowed(tmp_path):
    # values in a narrow high range: a blind 8-bit conversion would clip them all to 255
    arr = (np.linspace(40000, 41000, 64 * 64).reshape(64, 64)).astype(np.uint16)
    p = tmp_path / "a.png"
    Image.fromarray(arr).save(p)
    img = decode_image(p)
    assert img.dtype == np.uint16 and img.shape == (64, 64)
    np.testing.assert_array_equal(img, arr)
    f = to_float(img)
    assert f.dtype == np.float32 and f.min() == 0.0 and f.max() == 1.0
    assert len(np.unique(np.round(f, 3))) > 500            # the gradient survives
    g = to_float(img, "full-range")
    assert 0.6 < g.min() < g.max() < 0.63


def test_size_cap_keeps_dtype(tmp_path):
    big16 = (np.arange(300 * 200).reshape(300, 200) % 60000).astype(np.uint16)
    Image.fromarray(big16).save(tmp_path / "b.png")
    out = decode_image(tmp_path / "b.png", max_side=100)
    assert out.dtype == np.uint16 and out.shape == (100, 67)
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(tmp_path / "c.png")
    assert decode_image(tmp_path / "c.png", max_side=100).shape == (100, 67, 3)


def test_exif_transpose_and_modes(tmp_path):
    im = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90
    im.save(tmp_path / "r.jpg", exif=exif)
    assert decode_image(tmp_path / "r.jpg").shape == (20, 10, 3)
    Image.fromarray(np.zeros((5, 5, 4), np.uint8), "RGBA").save(tmp_path / "a.png")
    assert decode_image(tmp_path / "a.png").shape == (5, 5, 4)      # alpha kept; dropped per backbone
    Image.fromarray(np.zeros((5, 5), np.uint8)).convert("P").save(tmp_path / "p.png")
    assert decode_image(tmp_path / "p.png").shape == (5, 5, 3)


def test_percentile_rule_and_constant_image():
    x = np.arange(1000, dtype=np.float32).reshape(10, 100)
    f = to_float(x)
    assert f.min() == 0 and f.max() == 1
    assert (to_float(np.full((3, 3), 7, np.uint16)) == 0.5).all()
    with pytest.raises(InvalidParameterError):
        to_float(x, "bogus")


def test_sample_from_arrays():
    s = sample_from_arrays([np.zeros((4, 4), np.uint8)] * 3, ["a", "b", "a"])
    assert s.n == 3 and s.labels.tolist() == [0, 1, 0]
    with pytest.raises(LabelsError):
        sample_from_arrays([np.zeros((4, 4), np.uint8)], ["a", "b"])


def test_mixed_layout_warns_in_auto_mode(folder, caplog):
    _png(folder / "loose.png", np.zeros((4, 4), np.uint8))
    with caplog.at_level("WARNING", logger="proximity"):
        load_sample(folder)
    assert "Running label-free" in caplog.text and "loose.png" in caplog.text


def test_16bit_colour_png_is_named_in_a_warning(tmp_path, caplog):
    import zlib
    import struct
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + np.full((2, 3), 3000, ">u2").tobytes() for _ in range(2))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    (tmp_path / "rgb16.png").write_bytes(png)
    with caplog.at_level("WARNING", logger="proximity"):
        img = decode_image(tmp_path / "rgb16.png")
    assert img.shape == (2, 2, 3) and "16-bit colour PNG" in caplog.text
