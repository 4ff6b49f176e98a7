import numpy as np
import torch

from proximity import load_sample
from proximity.backbones import open_backbone, resolve_spec
from proximity.catalog import adhoc_entry
from proximity.evidence import collect_evidence, evidence_ingredients


def test_moments_equal_the_direct_computation(backbones, target_dir, fresh_cache):
    sample = load_sample(target_dir, sample=24)
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    ev = collect_evidence(spec, sample, batch_size=10, use_cache=False)
    assert ev.features.shape == (24, open_backbone(spec).feature_dim) and ev.features.dtype == np.float32
    # direct: all inputs of the first early BN over the whole sample at once
    bb = open_backbone(spec)
    seen = []
    h = bb.early_layers[0][1].register_forward_pre_hook(lambda m, i: seen.append(i[0].double()))
    x = torch.cat([spec.preprocess(b) for b in sample.batches(24)])
    with torch.no_grad():
        feats = bb.model(x)
    h.remove()
    t = seen[0]
    mu, var = ev.layer_moments(0)
    np.testing.assert_allclose(mu, t.mean((0, 2, 3)).numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(var, t.var((0, 2, 3), unbiased=False).numpy(), rtol=1e-5)
    np.testing.assert_allclose(ev.features, feats.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ev.source_means[0], bb.early_layers[0][1].running_mean.double().numpy())


def test_cache_hit_skips_the_forward_pass_and_key_covers_ingredients(backbones, target_dir, fresh_cache, monkeypatch):
    sample = load_sample(target_dir, sample=16)
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    first = collect_evidence(spec, sample)
    assert not first.cached and any(fresh_cache.rglob("*.npz"))
    import proximity.evidence as evmod
    monkeypatch.setattr(evmod, "open_backbone", lambda *a, **k: (_ for _ in ()).throw(AssertionError("forward pass on a cache hit")))
    second = collect_evidence(spec, sample)
    assert second.cached
    np.testing.assert_array_equal(first.features, second.features)
    base = evidence_ingredients(spec, sample, pretrained=True, seed=0)
    assert base != evidence_ingredients(spec, sample, pretrained=False, seed=0)
    assert base != evidence_ingredients(spec, load_sample(target_dir, sample=16, seed=1), pretrained=True, seed=0)


def test_unreadable_cache_file_is_recomputed(backbones, target_dir, fresh_cache):
    sample = load_sample(target_dir, sample=8)
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['B']}"))
    collect_evidence(spec, sample)
    for f in fresh_cache.rglob("*.npz"):
        f.write_bytes(b"truncated")
    again = collect_evidence(spec, sample)
    assert not again.cached and again.n == 8
