"""``--scratch``: the architecture trained from random weights on the sample, once per
architecture, cached, and read by the risk model's ``labels+scratch`` variant."""

import json

import numpy as np
import pytest

import synthetic as S
from proximity import risk as R
from proximity import scratch
from proximity.backbones import resolve_spec
from proximity.catalog import adhoc_entry
from proximity.data import sample_from_arrays
from proximity.signals import SignalValue as V


def _sample(n=20):
    """Two classes that differ in brightness: learnable from scratch in a few steps."""
    rng = np.random.default_rng(3)
    x = np.clip(rng.normal(0.5, 0.1, (2 * n, 48, 48)), 0, 1)
    y = np.repeat([0, 1], n)
    x[y == 1] = np.clip(x[y == 1] + 0.25, 0, 1)
    return sample_from_arrays(list(S.to_uint8_rgb(x)), [f"c{v}" for v in y])


def test_holdout_is_stratified_seeded_and_keeps_one_to_train_on():
    y = np.array([0] * 10 + [1] * 3 + [2] * 2)
    tr, ho = scratch.holdout_split(y, seed=0)
    assert sorted(np.concatenate([tr, ho]).tolist()) == list(range(15))
    assert [int((y[ho] == c).sum()) for c in (0, 1, 2)] == [3, 1, 1]      # round(0.3·n), at least one
    assert all((y[tr] == c).sum() >= 1 for c in (0, 1, 2))                 # and one left to train on
    again = scratch.holdout_split(y, seed=0)
    assert np.array_equal(again[1], ho) and not np.array_equal(scratch.holdout_split(y, seed=1)[1], ho)


def test_training_from_scratch_learns_an_easy_target_deterministically(backbones, fresh_cache):
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    smp = _sample()
    first = scratch.train_from_scratch(spec, smp, seed=0, use_cache=False)
    assert first.n_holdout == 12 and first.n_train == 28 and 1 <= first.epochs <= scratch.RECIPE["max_epochs"]
    assert first.accuracy >= 0.9                        # brightness: learnable from scratch
    assert first.sd == pytest.approx(np.sqrt(first.accuracy * (1 - first.accuracy) / 12))
    again = scratch.train_from_scratch(spec, smp, seed=0, use_cache=False)
    assert again.accuracy == first.accuracy and again.best_epoch == first.best_epoch


def test_the_head_fits_what_the_network_outputs_not_what_timm_says(tmp_path, fresh_cache):
    """MobileNetV3's pooled output (head_hidden_size, 1024 here) is wider than its num_features."""
    import timm
    import torch

    torch.manual_seed(0)
    repo = S.save_repo(timm.create_model("mobilenetv3_small_050", num_classes=2), tmp_path / "mnv3")
    spec = resolve_spec(adhoc_entry(f"local-dir:{repo}"))
    before = torch.get_rng_state()
    res = scratch.train_from_scratch(spec, _sample(), seed=0, use_cache=False)
    assert 0.0 <= res.accuracy <= 1.0 and res.epochs >= 1
    assert torch.equal(torch.get_rng_state(), before)        # the caller's global RNG is left as it was


def test_the_cache_key_changes_with_labels_seed_and_images(backbones):
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    smp = _sample()
    relabelled = sample_from_arrays([smp.images[i] for i in range(smp.n)],
                                    [smp.class_names[c] for c in smp.labels[::-1]])
    fewer = sample_from_arrays(smp.images[:-2], [smp.class_names[c] for c in smp.labels[:-2]])
    keys = {scratch.scratch_key(spec, smp, 0), scratch.scratch_key(spec, smp, 1),
            scratch.scratch_key(spec, relabelled, 0), scratch.scratch_key(spec, fewer, 0)}
    assert len(keys) == 4 and scratch.scratch_key(spec, smp, 0) == scratch.scratch_key(spec, _sample(), 0)


def test_no_labels_or_a_single_image_class_is_refused(backbones):
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    imgs = list(S.to_uint8_rgb(_sample_imgs()))
    with pytest.raises(ValueError, match="needs class labels"):
        scratch.train_from_scratch(spec, sample_from_arrays(imgs), use_cache=False)
    with pytest.raises(ValueError, match="≥ 2 images each"):
        scratch.train_from_scratch(spec, sample_from_arrays(imgs[:3], ["a", "a", "b"]), use_cache=False)


def _sample_imgs():
    return S.gratings(2, (0, 90), np.random.default_rng(0))[0]


def test_a_run_trains_once_per_architecture_and_a_rerun_reads_the_cache(target_dir, backbones, fresh_cache,
                                                                       monkeypatch):
    import proximity

    calls = []
    real = scratch._train
    monkeypatch.setattr(scratch, "_train", lambda *a, **k: calls.append(1) or real(*a, **k))
    models = [f"local-dir:{backbones['A']}", f"local-dir:{backbones['B']}"]
    r = proximity.rank(target_dir, models=models, scratch=True)
    assert len(calls) == 1                                   # A and B are both test_resnet at one input size
    got = [c.signals["scratch"] for c in r.ranking]
    assert got[0].value is not None and got[0].value == got[1].value and "hold-out" in got[0].reason
    assert r.settings["scratch"] is True and all("scratch_s" in c.timings for c in r.ranking)
    assert all(c.risk is not None for c in r.ranking)
    assert {c.risk_variant for c in r.ranking} == {"labels+scratch"}            # the shipped model used it
    assert all("from scratch" in c.risk_reason for c in r.ranking)
    again = proximity.rank(target_dir, models=models, scratch=True)
    assert len(calls) == 1 and [c.signals["scratch"].value for c in again.ranking] == [g.value for g in got]
    plain = proximity.rank(target_dir, models=models, signals="scratch")   # without --scratch: how to get it
    assert all(c.signals["scratch"].value is None and "--scratch" in c.signals["scratch"].reason
               for c in plain.ranking)


def test_a_failed_training_is_the_signal_reason_and_the_run_goes_on(target_dir, backbones, fresh_cache, monkeypatch):
    import proximity

    def boom(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(scratch, "_train", boom)
    r = proximity.rank(target_dir, models=[f"local-dir:{backbones['A']}"], scratch=True)
    s = r.ranking[0].signals["scratch"]
    assert s.value is None and s.reason == "failed: RuntimeError: out of memory"
    assert r.ranking[0].fit is not None and not r.failed
    assert r.ranking[0].risk_variant == "labels"                              # the risk falls back, silently


def test_cli_scratch_flag(target_dir, backbones, fresh_cache, tmp_path):
    from typer.testing import CliRunner

    from proximity.cli import app

    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["rank", str(target_dir), "--model", f"local-dir:{backbones['A']}", "--scratch",
                                   "--quiet", "--format", "json", "--output", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["settings"]["scratch"] is True
    assert doc["ranking"][0]["signals"]["scratch"]["value"] is not None
    help_ = CliRunner().invoke(app, ["rank", "--help"]).output
    assert "--scratch" in help_
    again = CliRunner().invoke(app, ["rank", str(target_dir), "--model", f"local-dir:{backbones['A']}", "--scratch",
                                     "--format", "json", "--output", str(out)])   # banner: says it will train
    assert again.exit_code == 0 and "trained from scratch on 70 % of the images" in again.output


def _var(features, coef):
    k = len(features) + 1
    return {"features": list(features), "mean": [0.0] * len(features), "scale": [0.1] * len(features),
            "coef": list(coef), "intercept": 0.0, "cov": (np.eye(k) * 0.01).tolist(),
            "range": [[-1.0] * len(features), [1.0] * len(features)]}


def test_risk_reads_the_scratch_variant_first_and_falls_back_silently():
    m = R.RiskModel.from_dict({"schema": 1, "variants": {
        "labels+scratch": _var(("probe_minus_scratch",), (-3.0,)), "labels": _var(("gain",), (-1.0,)),
        "label-free": _var(("log_shift",), (0.5,))}})
    sig = {"gain": V(0.1, 0.02), "probe": V(0.6, 0.05)}
    behind = R.estimate({**sig, "scratch": V(0.9, 0.05)}, 100, 2, model=m)
    ahead = R.estimate({**sig, "scratch": V(0.3, 0.05)}, 100, 2, model=m)
    assert behind.variant == ahead.variant == "labels+scratch"
    assert behind.value > 0.9 > 0.1 > ahead.value                        # probe far below scratch: negative
    assert "trained from scratch" in behind.reason
    plain = R.estimate(sig, 100, 2, model=m)                             # no --scratch: the labels model, no note
    assert plain.variant == "labels" and "scratch" not in plain.reason
    m2 = R.RiskModel.from_dict({"schema": 1, "variants": {
        "labels+scratch": _var(("probe_minus_scratch", "log_rankme_rel"), (-3.0, 0.1)),
        "labels": _var(("gain",), (-1.0,)), "label-free": _var(("log_shift",), (0.5,))}})
    unused = R.estimate({**sig, "scratch": V(0.9, 0.05)}, 100, 2, model=m2)  # no RankMe: a scratch value unused
    assert unused.variant == "labels"
    assert "the from-scratch result is unused: no log_rankme_rel for the labels+scratch model" in unused.reason
    assert R.FEATURE_SIGNALS["probe_minus_scratch"] == ("probe", "scratch")


def test_scratch_without_labels_says_so_and_trains_nothing(target_dir, backbones, fresh_cache, monkeypatch, caplog):
    import proximity

    monkeypatch.setattr(scratch, "_train", lambda *a, **k: pytest.fail("trained without labels"))
    r = proximity.rank(target_dir, models=[f"local-dir:{backbones['A']}"], labels="none", scratch=True,
                       signals="scratch")
    assert "--scratch needs labels" in caplog.text
    assert r.ranking[0].signals["scratch"].value is None


def test_fit_risk_never_reads_the_ground_truths_scratch_column_as_the_signal(tmp_path):
    """Before v2.3 the pairs' "scratch" column was the ground truth's from-scratch accuracy; since,
    that column is "scratch_gt" and "scratch" is the --scratch signal."""
    from scripts.fit_risk import read_rows_v2

    head = "target,split,negative,n_images,n_classes,probe,gain,gain.sd,scratch"
    old = tmp_path / "old.csv"
    old.write_text(head + "\nt,dev,1,40,2,0.6,0.1,0.02,0.9\n")
    new = tmp_path / "new.csv"
    new.write_text(head + ",scratch_gt\nt,dev,1,40,2,0.6,0.1,0.02,0.8,0.9\n")
    assert read_rows_v2(old)[0]["f"]["scratch"] is None
    row = read_rows_v2(new)[0]["f"]
    assert row["scratch"] == 0.8 and row["probe_minus_scratch"] == pytest.approx(-0.2)


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_transformers_backbones_train_from_scratch_too(kind, tmp_path, fresh_cache):
    repo = S.save_transformers_repo(kind, tmp_path / kind)
    res = scratch.train_from_scratch(resolve_spec(adhoc_entry(f"local-dir:{repo}")), _sample(), seed=0,
                                     use_cache=False)
    assert res.accuracy >= 0.9 and res.n_holdout == 12         # brightness is learnable by these tiny nets too


def test_a_one_image_class_trains_nothing_and_says_what_to_do(backbones, fresh_cache, monkeypatch, tmp_path):
    import proximity

    monkeypatch.setattr(scratch, "_train", lambda *a, **k: pytest.fail("trained with a one-image class"))
    x = np.clip(np.random.default_rng(0).normal(0.5, 0.1, (21, 48, 48)), 0, 1)
    folder = S.write_folder(tmp_path / "imgs", x, np.array(["a"] * 10 + ["b"] * 10 + ["c"]))
    r = proximity.rank(folder, models=[f"local-dir:{backbones['A']}"], scratch=True)
    s = r.ranking[0].signals["scratch"]
    assert s.value is None and "only 1 image" in s.reason and "add images or drop that class" in s.reason
