"""Reference statistics: builder, storage, the frechet signal and early_shift without batch norm."""


import numpy as np
import pytest
import timm
from typer.testing import CliRunner

import proximity
from conftest import S
from proximity.backbones import resolve_spec
from proximity.catalog import adhoc_entry
from proximity.cli import app
from proximity.reference import build_reference, find_reference, load_reference


@pytest.fixture(scope="session")
def domain_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    rng = np.random.default_rng(5)
    g, _ = S.gratings(15, [0, 45, 90, 135], rng)
    b, _ = S.blobs(15, [1, 2, 4, 8], rng)
    return {"gratings": S.write_folder(root / "gratings", g, None), "blobs": S.write_folder(root / "blobs", b, None)}


@pytest.fixture(scope="session")
def references(backbones, domain_dirs):
    return {k: build_reference(resolve_spec(adhoc_entry(f"local-dir:{backbones[k]}")), domain_dirs[d], top_k=16)
            for k, d in (("A", "gratings"), ("B", "blobs"))}


def test_reference_file_is_compact_with_provenance(references, backbones):
    ref = load_reference(references["A"])
    assert ref.mu.dtype == np.float32 and ref.eigvecs.dtype == np.float32 and ref.eigvecs.shape == (ref.dim, 16)
    np.testing.assert_allclose(ref.eigvecs.T.astype(float) @ ref.eigvecs, np.eye(16), atol=1e-5)
    assert (np.diff(ref.eigvals) <= 0).all() and ref.residual >= 0 and ref.n == 60
    assert ref.provenance["n_images"] == 60 and ref.provenance["source"].startswith("local-dir:")
    assert ref.layer_names == ("conv1.1", "conv1.4", "bn1", "layer1.0.bn1", "layer1.0.bn2")
    assert str(references["A"]).startswith(str(proximity.cache.data_dir()))
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    assert find_reference(spec).path == references["A"]


def test_frechet_prefers_the_in_domain_backbone(references, backbones, target_dir, fresh_cache):
    r = proximity.rank(target_dir, models=[f"local-dir:{backbones['B']}", f"local-dir:{backbones['A']}"], labels="none")
    fd = {c.model[-1]: c.signals["frechet"] for c in r.ranking}
    assert fd["A"].value < fd["B"].value and not fd["A"].higher_is_better
    assert "reference moments differ from the BN statistics" in r.ranking[0].signals["early_shift"].reason


def test_frechet_excess_through_the_cli(references, backbones, target_dir, fresh_cache):
    import json

    res = CliRunner().invoke(app, ["rank", str(target_dir), "--model", f"local-dir:{backbones['B']}", "--model",
                                   f"local-dir:{backbones['A']}", "--labels", "none", "--signals", "frechet_excess",
                                   "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    fx = {c["model"][-1]: c["signals"]["frechet_excess"] for c in out["ranking"]}
    # the target is gratings-like: A (pretrained on gratings) is nearer, in units of its own null
    assert 1.0 < fx["A"]["value"] < fx["B"]["value"] and fx["A"]["higher_is_better"] is False
    assert "samples of" in fx["A"]["reason"] and "from the reference Gaussian" in fx["A"]["reason"]


def test_frechet_absent_without_reference(tmp_path, target_dir, fresh_cache):
    model = timm.create_model("test_resnet", num_classes=0)
    S.save_repo(model, tmp_path / "nore")
    r = proximity.rank(target_dir, models=[f"local-dir:{tmp_path / 'nore'}"], sample=8, labels="none")
    assert "proximity catalog reference" in r[0].signals["frechet"].reason


def test_early_shift_for_a_network_without_batchnorm(tmp_path, domain_dirs, target_dir, fresh_cache):
    vit = timm.create_model("test_vit", num_classes=0, img_size=48)
    S.save_repo(vit, tmp_path / "vit")
    model = f"local-dir:{tmp_path / 'vit'}"
    before = proximity.rank(target_dir, models=[model], sample=12, labels="none")
    assert before[0].signals["early_shift"].value is None
    res = CliRunner().invoke(app, ["catalog", "reference", model, str(domain_dirs["blobs"]), "--top-k", "8"])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.stdout and "2 early layers" in res.stdout
    after = proximity.rank(target_dir, models=[model], sample=12, labels="none")
    s = after[0].signals
    assert s["early_shift"].value is not None and "blocks.0, blocks.1" in s["early_shift"].reason
    assert s["frechet"].value is not None and after.mode == "label-free" and after[0].fit is not None


def test_reference_cli_errors(domain_dirs):
    res = CliRunner().invoke(app, ["catalog", "reference", "nope", str(domain_dirs["blobs"])])
    assert res.exit_code == 2 and "No catalog entry 'nope'" in res.stderr


def test_a_reference_made_for_another_backbone_is_refused(references, backbones, target_dir, tmp_path, fresh_cache):
    entry = tmp_path / "b.toml"
    entry.write_text(f'source = "local-dir:{backbones["B"]}"\nreference = "{references["A"]}"\n')
    r = proximity.rank(target_dir, catalog=tmp_path, sample=8, labels="none")
    assert "made for another backbone (revision" in r[0].signals["frechet"].reason
