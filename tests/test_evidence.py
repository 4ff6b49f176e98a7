import pytest
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
    monkeypatch.setattr(evmod, "open_backbone",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("forward pass on a cache hit")))
    second = collect_evidence(spec, sample)
    assert second.cached
    np.testing.assert_array_equal(first.features, second.features)
    import dataclasses

    from proximity.cache import evidence_key
    base = evidence_key(evidence_ingredients(spec, sample, pretrained=True, seed=0))
    variants = [
        evidence_ingredients(spec, sample, pretrained=False, seed=0),
        evidence_ingredients(spec, sample, pretrained=False, seed=1) | {"weights": "x"},
        evidence_ingredients(spec, load_sample(target_dir, sample=16, seed=1), pretrained=True, seed=0),
        evidence_ingredients(dataclasses.replace(spec, revision="other"), sample, pretrained=True, seed=0),
        evidence_ingredients(dataclasses.replace(spec, truncated_at="features.3"), sample, pretrained=True, seed=0),
        evidence_ingredients(dataclasses.replace(spec, preprocess=dataclasses.replace(spec.preprocess, crop_pct=0.5)),
                             sample, pretrained=True, seed=0),
    ]
    keys = {evidence_key(v) for v in variants}
    assert len(keys) == len(variants) and base not in keys


def test_unreadable_cache_file_is_recomputed(backbones, target_dir, fresh_cache):
    sample = load_sample(target_dir, sample=8)
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['B']}"))
    collect_evidence(spec, sample)
    files = list(fresh_cache.rglob("*.npz"))
    for f in files:
        f.write_bytes(b"truncated")
    again = collect_evidence(spec, sample)
    assert not again.cached and again.n == 8
    for f in files:                      # a zip cut in the middle (interrupted copy)
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    assert not collect_evidence(spec, sample).cached


def test_control_bn_subsample_is_shuffled_not_class_sorted(target_dir):
    from proximity.evidence import _subsample
    sample = load_sample(target_dir)
    sub = _subsample(sample, 40, seed=0)
    assert sorted(sub.paths) != sub.paths and set(sub.paths) <= set(sample.paths) and sub.n == 40


def test_reduce_dims_reads_every_layout():
    from proximity.evidence import _reduce_dims
    x4, xl, xt = torch.zeros(2, 8, 5, 5), torch.zeros(2, 5, 5, 8), torch.zeros(2, 17, 8)
    assert _reduce_dims(x4, 8) == (2, 3) and _reduce_dims(xl, 8) == (1, 2) and _reduce_dims(xt, 8) == (1,)
    assert _reduce_dims(x4, None) == (2, 3)                    # BN input: always (N, C, H, W)
    assert _reduce_dims(torch.zeros(2, 8), 8) is None and _reduce_dims((x4,), 8) is None
    assert _reduce_dims(torch.zeros(2, 3, 3, 3), 8) is None    # channels nowhere: the layer is dropped


@pytest.mark.parametrize("arch", ["test_vit", "test_convnext", "test_mambaout"])
def test_non_bn_early_modules_give_per_channel_moments(arch, target_dir, tmp_path, fresh_cache):
    import timm
    from conftest import S
    model = timm.create_model(arch, num_classes=0)
    S.save_repo(model, tmp_path / arch, size=64 if arch != "test_vit" else 48)
    if arch == "test_vit":
        model = timm.create_model(arch, num_classes=0, img_size=48)
        S.save_repo(model, tmp_path / arch, size=48)
    spec = resolve_spec(adhoc_entry(f"local-dir:{tmp_path / arch}"))
    ev = collect_evidence(spec, load_sample(target_dir, sample=6), use_cache=False)
    chans = open_backbone(spec).early_channels
    assert ev.layer_names and all(ev.image_means[i].shape == (6, chans[n]) for i, n in enumerate(ev.layer_names))
    assert all(s.size == 0 for s in ev.source_vars)


@pytest.mark.parametrize("scale,shift", [(1.0, 0.0), (2.0, 3.0), (0.01, 5.0), (0.1, 20.0)])
@pytest.mark.parametrize("layout,dims", [("nchw", (2, 3)), ("nhwc", (1, 2)), ("tokens", (1,)),
                                         ("channels_last", (2, 3))])
def test_channel_moments_are_exact_also_far_from_zero(scale, shift, layout, dims):
    """The per-(image, channel) moments equal float64's to 1e-5, also where the mean is 500× the
    sd (the one-pass E[x²] − E[x]² in float32 is off by 13 % there)."""
    from proximity.evidence import channel_moments

    g = torch.Generator().manual_seed(0)
    shape = {"nchw": (4, 6, 28, 28), "nhwc": (4, 28, 28, 6), "tokens": (4, 196, 6),
             "channels_last": (4, 6, 28, 28)}[layout]
    x = (torch.randn(shape, generator=g) * scale + shift).relu()
    if layout == "channels_last":                  # (N, C, H, W) shape, (N, H, W, C) memory: its own route
        x = x.contiguous(memory_format=torch.channels_last)
    v, m = channel_moments(x, dims)
    plain = channel_moments(x.contiguous(), dims)
    assert v.shape == plain[0].shape and m.shape == plain[1].shape     # the same shapes whatever the memory
    v64, m64 = torch.var_mean(x.double(), dim=dims, correction=0, keepdim=True)
    np.testing.assert_allclose(m.double().numpy(), m64.numpy(), rtol=1e-6)
    np.testing.assert_allclose(v.double().reshape(v64.shape).numpy(), v64.numpy(), rtol=1e-5)


def test_overlapped_preprocessing_gives_the_same_evidence(backbones, target_dir):
    """Decoding and preprocessing the next batch in a thread (the accelerator default) changes
    nothing: same features, same moments, same order, bit for bit; also for a short last batch."""
    from proximity.evidence import forward_pass

    sample = load_sample(target_dir, sample=23)
    bb = open_backbone(resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}")))
    seen = []
    a = forward_pass(bb, sample, batch_size=5, overlap=False)
    b = forward_pass(bb, sample, batch_size=5, overlap=True, progress=lambda d, t: seen.append(d))
    assert seen == [5, 10, 15, 20, 23]
    np.testing.assert_array_equal(a.features, b.features)
    for x, y in zip(a.image_means + a.image_vars, b.image_means + b.image_vars, strict=True):
        np.testing.assert_array_equal(x, y)


def test_channels_last_evidence_equals_the_contiguous_pass(backbones, target_dir, fresh_cache, monkeypatch):
    """Issue 14: a convolutional network runs channels-last; its features, early moments and its
    random-weights control (BN re-estimated channels-last too) agree with the contiguous pass to rounding."""
    from proximity.backbones.spec import Backbone

    sample = load_sample(target_dir, sample=24)
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    bb = open_backbone(spec)
    assert bb.use_channels_last() and bb.channels_last
    assert next(p for p in bb.model.parameters() if p.ndim == 4).is_contiguous(memory_format=torch.channels_last)
    runs = {}
    for mode in ("channels_last", "contiguous"):
        if mode == "contiguous":
            monkeypatch.setattr(Backbone, "use_channels_last", lambda self: False)
        runs[mode] = [collect_evidence(spec, sample, pretrained=p, use_cache=False, batch_size=10)
                      for p in (True, False)]
    for cl, plain in zip(runs["channels_last"], runs["contiguous"], strict=True):
        np.testing.assert_allclose(cl.features, plain.features, rtol=1e-4, atol=1e-5)
        for i in range(len(plain.layer_names)):
            for a, b in zip(cl.layer_moments(i), plain.layer_moments(i), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


class _Flattening(torch.nn.Module):
    """Two convolutions, then ``view``: fails on a channels-last tensor."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 3)
        self.num_features = 4

    def forward(self, x):
        y = self.b(self.a(x))
        return y.view(y.shape[0], -1)[:, :4]          # C, H, W merged: needs (N, C, H, W) memory


def test_a_network_that_cannot_run_channels_last_is_left_contiguous(backbones):
    import dataclasses

    from proximity.backbones.spec import Backbone

    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    spec = dataclasses.replace(spec, data_config={**spec.data_config, "input_size": (3, 16, 16)})
    bb = Backbone(spec=spec, model=_Flattening().eval(), early_layers=[], feature_dim=4, device=torch.device("cpu"))
    assert not bb.use_channels_last() and not bb.channels_last
    assert bb.model.a.weight.is_contiguous()
    x = torch.rand(2, 3, 16, 16)
    assert bb.features(x).shape == (2, 4)          # it runs, as it was


def test_bfloat16_evidence_keeps_float32_statistics_and_its_own_cache_key(backbones, target_dir, fresh_cache):
    from proximity.cache import evidence_key

    sample = load_sample(target_dir, sample=24)
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    full = collect_evidence(spec, sample, use_cache=False)
    low = collect_evidence(spec, sample, use_cache=False, precision="bfloat16")
    assert low.features.dtype == np.float32 and low.image_means[0].dtype == np.float64
    np.testing.assert_allclose(low.features, full.features, rtol=0.1, atol=0.05 * np.abs(full.features).max())
    assert not np.array_equal(low.features, full.features)          # it did run in bfloat16
    for p in (True, False):
        plain = evidence_ingredients(spec, sample, pretrained=p, seed=0)
        assert "precision" not in plain                             # float32 keys are those of earlier versions
        assert evidence_key(plain) != evidence_key(evidence_ingredients(spec, sample, pretrained=p, seed=0,
                                                                        precision="bfloat16"))


@pytest.mark.parametrize("arch", ["test_resnet", "test_convnext", "test_efficientnet", "test_byobnet", "test_nfnet",
                                  "test_coatnet", "test_maxvit", "test_vit"])
def test_channels_last_across_timm_families(arch, target_dir):
    """On by default, so every family must give the contiguous pass's features (or stay off: a ViT
    has one convolution, its patch embedding)."""
    from proximity.evidence import forward_pass

    sample = load_sample(target_dir, sample=6)
    spec = resolve_spec(adhoc_entry(f"timm:{arch}"))
    plain = forward_pass(open_backbone(spec, pretrained=False), sample, batch_size=4)
    bb = open_backbone(spec, pretrained=False)
    assert bb.use_channels_last() is (arch != "test_vit")
    cl = forward_pass(bb, sample, batch_size=4)
    np.testing.assert_allclose(cl.features, plain.features, rtol=1e-4, atol=1e-4 * np.abs(plain.features).max())
    for i in range(len(plain.layer_names)):
        for a, b in zip(cl.layer_moments(i), plain.layer_moments(i), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_evidence_does_not_depend_on_the_thread_count(backbones, target_dir):
    """A Ray worker (one thread) must give the serial run's evidence bit for bit: channels-last
    inference is thread-invariant, train-mode BN channels-last is not, so the control's BN
    re-estimation runs contiguous."""
    sample = load_sample(target_dir, sample=24)
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    threads = torch.get_num_threads()
    got = {}
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            got[t] = [collect_evidence(spec, sample, pretrained=p, use_cache=False) for p in (True, False)]
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(got[1], got[2], strict=True):
        np.testing.assert_array_equal(one.features, two.features)
        for a, b in zip(one.image_vars + one.image_means, two.image_vars + two.image_means, strict=True):
            np.testing.assert_array_equal(a, b)
