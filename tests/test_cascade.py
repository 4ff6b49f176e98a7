"""The catalog cascade: a screen of every candidate, the full evaluation of a shortlist, the
others listed after them as screened (schema 2, additive)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import proximity
from proximity.cascade import SCREEN_MIN, screen_sample, screen_size
from proximity.cli import app
from proximity.data import sample_from_arrays


@pytest.fixture(scope="module")
def three(backbones, tmp_path_factory):
    """Three candidates: the two fixture backbones and a random-weights test_resnet."""
    import timm
    import torch

    import synthetic as S

    torch.manual_seed(3)
    c = S.save_repo(timm.create_model("test_resnet", num_classes=4), tmp_path_factory.mktemp("rnd") / "R")
    return [f"local-dir:{backbones['A']}", f"local-dir:{backbones['B']}", f"local-dir:{c}"]


def test_screen_sample_is_stratified_seeded_and_in_order():
    labels = [f"c{i % 4}" for i in range(200)]
    smp = sample_from_arrays([np.full((4, 4), i % 256, np.uint8) for i in range(200)], labels)
    m = screen_size(smp.n)
    sub = screen_sample(smp, m, seed=0)
    assert m == max(SCREEN_MIN, 50) and abs(sub.n - m) <= 4
    counts = np.bincount(sub.labels)
    assert counts.min() == counts.max() == round(m / 4)          # each class in proportion
    assert sub.paths == sorted(sub.paths) and set(sub.paths) <= set(smp.paths)
    assert screen_sample(smp, m, seed=0).paths == sub.paths != screen_sample(smp, m, seed=1).paths
    assert screen_size(SCREEN_MIN - 1) == SCREEN_MIN - 1      # small samples: the screen sees them all


def test_shortlist_evaluates_the_best_and_lists_the_rest_as_screened(target_dir, three, fresh_cache):
    full = proximity.rank(target_dir, models=three, sample=None, folds=3)
    cut = proximity.rank(target_dir, models=three, sample=None, folds=3, shortlist=1)
    assert cut.settings["shortlist"] == 1 and full.settings["shortlist"] is None
    top, *rest = cut.ranking
    assert not top.screened and top.fit is not None and top.rank == 1
    assert [c.screened for c in rest] == [True, True] and [c.rank for c in rest] == [2, 3]
    for c in rest:
        assert c.fit is None and c.risk is None and c.risk_band == "unknown" and c.signals == {}
        assert c.screen["rank"] in (2, 3) and "outside the shortlist of 1" in c.screen["reason"]
        assert "screened out" in c.risk_reason
    assert [c.screen["rank"] for c in rest] == sorted(c.screen["rank"] for c in rest)
    # the evaluated candidate is evaluated exactly as without a screen
    same = next(c for c in full.ranking if c.model == top.model)
    assert top.signals == same.signals
    # schema 2, additive: the JSON says it and reads back
    d = json.loads(cut.to_json())
    assert d["schema_version"] == 2 and d["ranking"][0]["screened"] is False and d["ranking"][0]["screen"] is None
    assert d["ranking"][1]["screened"] is True and isinstance(d["ranking"][1]["screen"]["score"], float)
    back = proximity.Ranking.from_dict(d)
    assert [c.screened for c in back.ranking] == [False, True, True] and back[1].screen == rest[0].screen


def test_screen_is_cached_and_label_free_works(target_dir, three, fresh_cache):
    first = proximity.rank(target_dir, models=three, sample=None, labels="none", shortlist=2)
    again = proximity.rank(target_dir, models=three, sample=None, labels="none", shortlist=2)
    assert first.mode == "label-free" and [c.screened for c in first.ranking] == [False, False, True]
    assert [c.model for c in again.ranking] == [c.model for c in first.ranking]
    assert all(c.cached for c in again.ranking if not c.screened)
    from proximity.ranking import load_rules

    rule = load_rules()["label-free"]                                # the label-free rule screened
    assert rule.name in first.ranking[2].screen["reason"] or rule.terms[0][0] in first.ranking[2].screen["reason"]


def test_auto_shortlist_for_a_large_catalog_and_the_cli(target_dir, backbones, tmp_path, fresh_cache):
    cat = tmp_path / "cat"
    cat.mkdir()
    for i in range(21):
        (cat / f"m{i:02d}.toml").write_text(f'source = "local-dir:{backbones["AB"[i % 2]]}"\n')
    res = CliRunner().invoke(app, ["rank", str(target_dir), "--catalog", str(cat), "-n", "16", "--folds", "3",
                                   "-f", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["settings"]["shortlist"] == 6
    assert [c["screened"] for c in out["ranking"]] == [False] * 6 + [True] * 15
    res = CliRunner().invoke(app, ["rank", str(target_dir), "--catalog", str(cat), "-n", "16", "--folds", "3",
                                   "--shortlist", "0", "-f", "json"])
    assert res.exit_code == 0 and not any(c["screened"] for c in json.loads(res.stdout)["ranking"])
