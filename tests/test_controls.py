"""The random-weights control is shared by the entries of one architecture and preprocessing:
their random networks are the same, and a run computes it once."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import synthetic as S
from proximity import evidence
from proximity.backbones import open_backbone, resolve_spec
from proximity.catalog import adhoc_entry
from proximity.controls import control_identity


@pytest.fixture(scope="module")
def other_head(tmp_path_factory):
    """A test_resnet repo saved with another number of classes (and random weights)."""
    import timm

    torch.manual_seed(5)
    return S.save_repo(timm.create_model("test_resnet", num_classes=7), tmp_path_factory.mktemp("head") / "C")


def _spec(path):
    return resolve_spec(adhoc_entry(f"local-dir:{path}"))


def test_entries_of_one_architecture_share_an_identity_and_a_random_network(backbones, other_head):
    a, b, c = _spec(backbones["A"]), _spec(backbones["B"]), _spec(other_head)
    assert a.revision != b.revision != c.revision                 # three different checkpoints …
    assert control_identity(a) == control_identity(b) == control_identity(c)
    nets = [open_backbone(s, pretrained=False, seed=0).model.state_dict() for s in (a, b, c)]
    for other in nets[1:]:                                        # … and one random network
        assert nets[0].keys() == other.keys()
        assert all(torch.equal(nets[0][k], other[k]) for k in nets[0])


def test_another_input_configuration_is_another_control(backbones):
    a = _spec(backbones["A"])
    bigger = resolve_spec(dataclasses.replace(adhoc_entry(f"local-dir:{backbones['A']}"), input_size=64))
    assert control_identity(bigger) != control_identity(a)
    seeded = evidence.evidence_ingredients(a, _dummy_sample(), pretrained=False, seed=1)
    assert seeded != evidence.evidence_ingredients(a, _dummy_sample(), pretrained=False, seed=0)


def _dummy_sample():
    from proximity.data import sample_from_arrays

    return sample_from_arrays([np.zeros((8, 8, 3), np.uint8)] * 4)


def test_a_run_computes_one_control_per_architecture(target_dir, backbones, other_head, monkeypatch, tmp_path):
    import proximity

    calls = []
    real = evidence.collect_evidence

    def counting(spec, sample, *, pretrained=True, **kw):
        out = real(spec, sample, pretrained=pretrained, **kw)
        calls.append((spec.entry.id, pretrained, out.cached))
        return out

    monkeypatch.setattr(evidence, "collect_evidence", counting)
    models = [f"local-dir:{p}" for p in (backbones["A"], backbones["B"], other_head)]
    r = proximity.rank(target_dir, models=models, sample=16, folds=3, use_cache=False)   # also without the cache
    assert [p for _, p, _ in calls].count(False) == 1
    gains = [c.signals["control"].value for c in r.ranking]
    assert len(set(gains)) == 1 and gains[0] is not None           # one control probe for all three
    # and the control evidence carries the pooled features only
    ctl = real(_spec(backbones["A"]), proximity.load_sample(target_dir, sample=16), pretrained=False, use_cache=False)
    assert ctl.layer_names == [] and ctl.features.shape[0] == 16


def _labelled(n_per_class, seed=0):
    from proximity.data import Sample

    y = np.concatenate([np.full(k, c) for c, k in enumerate(n_per_class)])
    rng = np.random.default_rng(seed)
    imgs = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in y]
    return Sample(root=Path("."), paths=[f"{i}.png" for i in range(len(y))], images=imgs, labels=y,
                  class_names=[f"c{c}" for c in range(len(n_per_class))])


def test_the_control_subset_is_stratified_seeded_and_keeps_every_class():
    from proximity.scoring import control_subset

    s = _labelled([100, 30, 3])
    idx = control_subset(s, 0, 64)
    counts = np.bincount(s.labels[idx], minlength=3)
    assert counts.tolist() == [48, 14, 3]          # round(64 · share), at least min(folds, all it has) per class
    assert np.bincount(s.labels[control_subset(s, 0, 64, folds=2)], minlength=3).tolist() == [48, 14, 2]
    many = _labelled([12] * 40)                    # 40 classes: 5 each (the probe keeps its 5 folds), not 2
    assert np.bincount(many.labels[control_subset(many, 0, 64)]).tolist() == [5] * 40
    assert np.array_equal(idx, np.sort(idx)) and len(set(idx.tolist())) == len(idx)
    np.testing.assert_array_equal(idx, control_subset(s, 0, 64))
    assert not np.array_equal(idx, control_subset(s, 1, 64))
    np.testing.assert_array_equal(control_subset(s, 0, None), np.arange(s.n))   # 'all'
    np.testing.assert_array_equal(control_subset(s, 0, 500), np.arange(s.n))    # ≥ the sample: all
    s.labels = None                                                             # label-free: a plain permutation
    np.testing.assert_array_equal(control_subset(s, 0, 64),
                                  np.sort(np.random.default_rng(0).permutation(s.n)[:64]))


def test_gain_pairs_the_same_images_and_the_whole_sample_gives_the_old_gain():
    """gain = probe − control on the control's images, fold by fold; with the control on every
    image it is the probe − control of the whole sample."""
    from proximity.signals import SignalContext, compute_signals
    from proximity.signals.probe import probe_scores
    from sklearn.model_selection import StratifiedKFold

    from test_signals import ENTRY, _evidence

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    good = (rng.normal(size=(120, 8)) + 2 * np.eye(3, 8)[y]).astype(np.float32)
    noise = rng.normal(size=(120, 8)).astype(np.float32)
    idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:12] for c in range(3)]))
    sub = SignalContext(evidence=_evidence(features=good, n=120), entry=ENTRY, labels=y,
                        control=_evidence(features=noise[idx], n=len(idx)), control_subset=idx,
                        control_subset_features=noise[idx])
    s = compute_signals(sub, ["probe", "control", "gain"])
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(36), y[idx]))
    pre, _ = probe_scores(good[idx].astype(np.float64), y[idx], splits)
    ctl, _ = probe_scores(noise[idx].astype(np.float64), y[idx], splits)
    assert s["control"].value == pytest.approx(ctl.mean()) and "36 images" in s["control"].reason
    assert s["gain"].value == pytest.approx((pre - ctl).mean())
    assert s["gain"].sd == pytest.approx((pre - ctl).std(ddof=1))
    full = SignalContext(evidence=_evidence(features=good, n=120), entry=ENTRY, labels=y,
                         control=_evidence(features=noise, n=120), control_subset=np.arange(120),
                         control_subset_features=noise)
    f = compute_signals(full, ["probe", "control", "gain"])
    assert f["gain"].value == pytest.approx(f["probe"].value - f["control"].value)
    # a subset that lost a class cannot give a control probe, and says what to do
    one = np.flatnonzero(y != 2)[:20]
    lost = SignalContext(evidence=_evidence(features=good, n=120), entry=ENTRY, labels=y,
                         control=_evidence(features=noise[one], n=20), control_subset=one,
                         control_subset_features=noise[one])
    assert "--control-images" in compute_signals(lost, ["gain"])["gain"].reason


def test_control_images_through_the_api_and_the_cli(target_dir, backbones, tmp_path):
    import json

    import proximity
    from typer.testing import CliRunner

    from proximity.cli import app

    model = f"local-dir:{backbones['A']}"
    sub = proximity.rank(target_dir, models=[model], sample=40, folds=3, control_images=12, use_cache=False)
    full = proximity.rank(target_dir, models=[model], sample=40, folds=3, control_images=None, use_cache=False)
    assert "on 12 images" in sub.ranking[0].signals["gain"].reason
    assert "on 40 images" in full.ranking[0].signals["gain"].reason
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["rank", str(target_dir), "--model", model, "--sample", "40", "--folds", "3",
                                   "--control-images", "all", "--no-cache", "--format", "json", "--output", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["settings"]["control_images"] is None and "on 40 images" in d["ranking"][0]["signals"]["gain"]["reason"]
    bad = CliRunner().invoke(app, ["rank", str(target_dir), "--model", model, "--control-images", "half"])
    assert bad.exit_code == 2 and "--control-images takes a number of images ≥ 8 or 'all', not 'half'" in bad.output
    for given in ("3", "²"):
        small = CliRunner().invoke(app, ["rank", str(target_dir), "--model", model, "--control-images", given])
        assert small.exit_code == 2 and "a number of images ≥ 8 or 'all'" in small.output
