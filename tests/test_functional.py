"""The idea works: on a target from domain A (new classes), the backbone pretrained on A ranks
first, with labels and label-free, although both domains share per-channel pixel mean and sd."""

import json

import numpy as np

import proximity
from conftest import S


def test_domains_share_pixel_statistics():
    rng = np.random.default_rng(0)
    g, _ = S.gratings(50, [0, 90], rng)
    b, _ = S.blobs(50, [2, 4], rng)
    assert abs(g.mean() - b.mean()) < 2e-3 and abs(g.std() - b.std()) < 2e-3


def _models(backbones):
    # B first, so that catalog order cannot explain the result
    return [f"local-dir:{backbones['B']}", f"local-dir:{backbones['A']}"]


def test_in_domain_backbone_ranks_first_with_labels(backbones, target_dir, fresh_cache):
    r = proximity.rank(target_dir, models=_models(backbones))
    assert r.mode == "labels" and r.sample.n_classes == 4
    assert r.best.model == _models(backbones)[1]
    a, b = r.ranking
    assert a.signals["probe"].value > b.signals["probe"].value + 0.1
    assert a.signals["gain"].value > 0.2 and a.risk < b.risk
    assert a.signals["early_shift"].value < b.signals["early_shift"].value


def test_in_domain_backbone_ranks_first_label_free(backbones, target_dir, fresh_cache):
    r = proximity.rank(target_dir, models=_models(backbones), labels="none")
    assert r.mode == "label-free" and r.sample.n_classes == 0
    assert r.best.model == _models(backbones)[1]
    a, b = r.ranking
    assert a.signals["early_shift"].value + 3 * a.signals["early_shift"].sd < b.signals["early_shift"].value
    assert a.signals["probe"].value is None
    assert a.signals["probe"].reason == "not run: labels switched off (--labels none)"
    assert a.signals["control"].value is None


def test_deterministic_for_a_fixed_seed(backbones, target_dir, fresh_cache):
    def run():
        d = proximity.rank(target_dir, models=_models(backbones), use_cache=False).to_dict()
        for c in d["ranking"]:
            c.pop("timings")
        return json.dumps(d, sort_keys=True)
    assert run() == run()
