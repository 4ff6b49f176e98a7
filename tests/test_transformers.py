"""transformers vision backbones through the same build path as timm ones (AutoModel +
AutoImageProcessor), local and through the loopback fake Hub."""

import json

import pytest

import proximity
from conftest import S
from proximity.backbones import open_backbone, resolve_spec
from proximity.catalog import adhoc_entry

pytest.importorskip("transformers")

KINDS = ("vit", "dinov2", "beit", "resnet", "convnext", "clip", "siglip")


@pytest.fixture(scope="module")
def tf_repos(tmp_path_factory):
    root = tmp_path_factory.mktemp("tf")
    return {k: S.save_transformers_repo(k, root / k, seed=i) for i, k in enumerate(KINDS)}


@pytest.mark.parametrize("kind", KINDS)
def test_spec_reads_the_image_processor_and_builds_pooled_features(tf_repos, kind):
    import torch
    spec = resolve_spec(adhoc_entry(f"local-dir:{tf_repos[kind]}"))
    assert spec.format == "transformers" and spec.architecture == f"transformers:{kind}"
    assert spec.data_config["input_size"] == (3, 32, 32)
    if kind == "dinov2":                                   # shortest edge 36, crop 32; its own mean/std
        assert spec.data_config["crop_pct"] == pytest.approx(32 / 36) and spec.data_config["interpolation"] == "bicubic"
        assert spec.data_config["mean"] == pytest.approx((0.485, 0.456, 0.406))
    bb = open_backbone(spec)
    f = bb.features(torch.zeros(2, 3, 32, 32))
    assert f.shape == (2, bb.feature_dim) and bb.feature_dim == (16 if kind in ("resnet", "convnext") else 32)
    if kind == "resnet":                                   # BN network: early BN layers, as for timm
        assert bb.early_layers and bb.early_layers[0][0].startswith("model.embedder")
    else:                                                  # LayerNorm networks: the first two blocks / stem + stage 0
        assert len(bb.early_modules) >= 1 and not bb.early_layers


def test_random_weights_control_differs_and_is_seeded(tf_repos):
    import torch
    spec = resolve_spec(adhoc_entry(f"local-dir:{tf_repos['vit']}"))
    x = torch.rand(2, 3, 32, 32)
    a, b, c = (open_backbone(spec, pretrained=p, seed=0).features(x) for p in (True, False, False))
    assert not torch.allclose(a, b) and torch.equal(b, c)


def test_transformers_and_timm_rank_together_through_the_fake_hub(hub, tf_repos, target_dir, backbones, fresh_cache):
    sha = hub.add_dir("org/tiny-dinov2", tf_repos["dinov2"])
    hub.add_dir("org/tiny-vit-tf", tf_repos["vit"])
    r = proximity.rank(target_dir,
                       models=["hf-hub:org/tiny-dinov2", "hf-hub:org/tiny-vit-tf", f"local-dir:{backbones['A']}"],
                       sample=40)
    assert not r.failed, r.failed
    assert {c.model for c in r.ranking} == {"hf-hub:org/tiny-dinov2", "hf-hub:org/tiny-vit-tf",
                                            f"local-dir:{backbones['A']}"}
    for c in r.ranking:
        assert c.signals["probe"].value is not None and c.signals["gain"].value is not None
    assert r.best.model == f"local-dir:{backbones['A']}"       # trained on gratings vs untrained tiny transformers
    assert resolve_spec(adhoc_entry("hf-hub:org/tiny-dinov2")).revision == sha   # pinned to the served commit


def test_reference_gives_a_transformers_backbone_its_early_shift(tf_repos, target_dir, tmp_path, fresh_cache):
    from typer.testing import CliRunner
    from proximity.cli import app
    entry = tmp_path / "cat" / "tiny-vit.toml"
    entry.parent.mkdir()
    entry.write_text(f'source = "local-dir:{tf_repos["vit"]}"\n')
    before = proximity.rank(target_dir, catalog=entry.parent, sample=24, control=False)
    assert before.ranking[0].signals["early_shift"].value is None
    res = CliRunner().invoke(app, ["catalog", "reference", "tiny-vit", str(target_dir), "--catalog", str(entry.parent),
                                   "--sample", "24", "--top-k", "8"])
    assert res.exit_code == 0, res.output
    after = proximity.rank(target_dir, catalog=entry.parent, sample=24, control=False)
    assert after.ranking[0].signals["early_shift"].value is not None


def test_remote_code_unknown_type_and_wrong_weights_are_reported(hub, tf_repos, target_dir, backbones, fresh_cache):
    hub.add_repo("org/remote-code", {"config.json": json.dumps({"model_type": "phenom_mae", "auto_map": {
        "AutoModel": "modeling.Phenom"}}).encode()})
    files = {p.name: p.read_bytes() for p in tf_repos["vit"].iterdir()}
    cfg = json.loads(files["config.json"])
    cfg["hidden_size"], cfg["num_attention_heads"] = 48, 2               # weights saved at 32 do not fit
    hub.add_repo("org/wrong-weights", {**files, "config.json": json.dumps(cfg).encode()})
    r = proximity.rank(target_dir,
                       models=["hf-hub:org/remote-code", "hf-hub:org/wrong-weights", f"local-dir:{backbones['A']}"],
                       sample=12, control=False)
    assert [c.model for c in r.ranking] == [f"local-dir:{backbones['A']}"]
    why = {f.model: f.error for f in r.failed}
    assert "remote code" in why["hf-hub:org/remote-code"]
    wrong = why["hf-hub:org/wrong-weights"]
    assert "weights do not match" in wrong or "size mismatch" in wrong
