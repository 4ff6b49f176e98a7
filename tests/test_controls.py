"""The random-weights control is shared by the entries of one architecture and preprocessing:
their random networks are the same, and a run computes it once."""

import dataclasses

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
