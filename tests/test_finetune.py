"""``--finetune``: each candidate fine-tuned from its pretrained weights on the split and with the
loop of ``--scratch``, cached; a signal that the shipped fit and risk do not use (benchmark v2.5),
and the ``labels+finetune`` risk variant and fit rule that would use it if one were shipped."""

import json

import pytest

from proximity import risk as R
from proximity import scratch
from proximity.backbones import open_backbone, resolve_spec
from proximity.catalog import adhoc_entry
from proximity.signals import SignalValue as V
from test_scratch import _sample, _var


def test_the_fine_tune_starts_from_the_pretrained_weights_with_a_slower_backbone(backbones, fresh_cache,
                                                                               monkeypatch):
    import torch

    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    pretrained = {k: v.clone() for k, v in open_backbone(spec).model.state_dict().items()}
    seen = []
    real = scratch._fit

    def spy(net, x, y, tr, ho, dev, seed, progress, recipe=scratch.RECIPE, groups=None):
        state = net[0].state_dict()
        seen.append({"same": all(torch.equal(state[k], pretrained[k]) for k in pretrained if "num_batches" not in k),
                     "recipe": recipe, "lrs": [g["lr"] for g in groups or []]})
        return real(net, x, y, tr, ho, dev, seed, progress, recipe, groups)

    steps = []
    step = torch.optim.AdamW.step

    def spy_step(self, *a, **k):       # the learning rates each step really used
        steps.append([(g["lr"], sum(p.numel() for p in g["params"])) for g in self.param_groups])
        return step(self, *a, **k)

    monkeypatch.setattr(scratch, "_fit", spy)
    monkeypatch.setattr(torch.optim.AdamW, "step", spy_step)
    ft = scratch.finetune_on_sample(spec, _sample(), seed=0, use_cache=False)
    ft_steps = list(steps)
    sc = scratch.train_from_scratch(spec, _sample(), seed=0, use_cache=False)
    assert len(ft_steps) >= ft.epochs >= scratch.FINETUNE_RECIPE["min_epochs"]
    assert all(len(s) == 2 and s[1][1] == 96 * 2 + 2 for s in ft_steps)     # group 2: the linear head (96 → 2)
    for (body_lr, _), (head_lr, _) in ft_steps:
        assert body_lr == pytest.approx(head_lr / 10)     # warm-up and cosine scale both groups alike
    assert max(h for _, (h, _) in ft_steps) == pytest.approx(1e-3, rel=0.05)
    assert all(len(s) == 1 for s in steps[len(ft_steps):])                   # scratch: one group
    assert seen[0]["same"] and not seen[1]["same"]            # the pretrained weights; random ones for scratch
    assert seen[0]["recipe"] is scratch.FINETUNE_RECIPE and seen[0]["lrs"] == [1e-4, 1e-3]
    assert seen[1]["recipe"] is scratch.RECIPE
    assert ft.pretrained and not sc.pretrained and "fine-tuned from the pretrained weights" in ft.detail()
    assert (ft.n_holdout, ft.n_train) == (sc.n_holdout, sc.n_train) == (12, 28)   # one split: a paired comparison
    assert 1 <= ft.epochs <= scratch.FINETUNE_RECIPE["max_epochs"] and ft.accuracy >= 0.9
    again = scratch.finetune_on_sample(spec, _sample(), seed=0, use_cache=False)
    assert (again.accuracy, again.best_epoch) == (ft.accuracy, ft.best_epoch)   # deterministic


def test_the_cache_key_is_the_candidates_not_the_architectures(backbones):
    a = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    b = resolve_spec(adhoc_entry(f"local-dir:{backbones['B']}"))
    smp = _sample()
    assert scratch.scratch_key(a, smp, 0) == scratch.scratch_key(b, smp, 0)     # one architecture: one scratch run
    keys = {scratch.finetune_key(a, smp, 0), scratch.finetune_key(b, smp, 0), scratch.finetune_key(a, smp, 1),
            scratch.scratch_key(a, smp, 0)}
    assert len(keys) == 4                                                       # two checkpoints: two fine-tunes


def test_a_run_fine_tunes_each_candidate_once_and_a_rerun_reads_the_cache(target_dir, backbones, fresh_cache,
                                                                         monkeypatch):
    import proximity

    calls = []
    real = scratch._train
    monkeypatch.setattr(scratch, "_train", lambda *a, **k: calls.append(k.get("pretrained", False)) or real(*a, **k))
    models = [f"local-dir:{backbones['A']}", f"local-dir:{backbones['B']}"]
    r = proximity.rank(target_dir, models=models, finetune=True, scratch=True)
    assert sorted(calls) == [False, True, True]            # one from-scratch run, one fine-tune per candidate
    got = {c.model: c.signals["finetune"] for c in r.ranking}
    assert all(v.value is not None and "fine-tuned" in v.reason for v in got.values())
    assert r.settings["finetune"] is True and all("finetune_s" in c.timings for c in r.ranking)
    again = proximity.rank(target_dir, models=models, finetune=True, scratch=True)
    assert len(calls) == 3 and {c.model: c.signals["finetune"].value for c in again.ranking} == \
        {m: v.value for m, v in got.items()}
    assert "rule_mode" not in again.fit_rule                 # no labels+finetune rule ships: the labels rule ran
    from proximity import api
    from proximity.ranking import FitRule, load_rules

    shipped = {**load_rules(), "labels+finetune": FitRule("finetune", "single", (("finetune", 1.0),))}
    monkeypatch.setattr(api, "load_rules", lambda: shipped)   # as if one shipped: the cached run uses it
    tuned = proximity.rank(target_dir, models=models, finetune=True, scratch=True)
    assert tuned.fit_rule["rule_mode"] == "labels+finetune" and tuned.fit_rule["name"] == "finetune"
    assert [c.fit for c in tuned.ranking] == sorted((v.value for v in got.values()), reverse=True)
    plain = proximity.rank(target_dir, models=models, signals="finetune")   # without --finetune: how to get it
    assert all(c.signals["finetune"].value is None and "--finetune" in c.signals["finetune"].reason
               for c in plain.ranking)


def test_a_failed_fine_tune_is_the_signal_reason_and_the_run_goes_on(target_dir, backbones, fresh_cache, monkeypatch):
    import proximity

    real = scratch._train

    def boom(*a, **k):
        if k.get("pretrained"):
            raise RuntimeError("out of memory")
        return real(*a, **k)

    monkeypatch.setattr(scratch, "_train", boom)
    r = proximity.rank(target_dir, models=[f"local-dir:{backbones['A']}"], finetune=True, scratch=True)
    s = r.ranking[0].signals["finetune"]
    assert s.value is None and s.reason == "failed: RuntimeError: out of memory"
    assert r.ranking[0].signals["scratch"].value is not None and not r.failed
    assert r.ranking[0].risk is not None


def test_finetune_without_labels_says_so_and_trains_nothing(target_dir, backbones, fresh_cache, monkeypatch,
                                                             caplog):
    import proximity

    monkeypatch.setattr(scratch, "_train", lambda *a, **k: pytest.fail("trained without labels"))
    r = proximity.rank(target_dir, models=[f"local-dir:{backbones['A']}"], labels="none", finetune=True,
                       signals="finetune")
    assert "--finetune needs labels" in caplog.text
    assert r.ranking[0].signals["finetune"].value is None


def test_cli_finetune_flag(target_dir, backbones, fresh_cache, tmp_path):
    from typer.testing import CliRunner

    from proximity.cli import app

    out = tmp_path / "r.json"
    args = ["rank", str(target_dir), "--model", f"local-dir:{backbones['A']}", "--finetune", "--format", "json",
            "--output", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "each candidate fine-tuned on 70 % of the images" in res.output           # the banner says it trains
    doc = json.loads(out.read_text())
    assert doc["settings"]["finetune"] is True
    assert doc["ranking"][0]["signals"]["finetune"]["value"] is not None
    assert "--finetune" in CliRunner().invoke(app, ["rank", "--help"]).output


def test_risk_reads_the_finetune_variant_first_and_falls_back_silently():
    m = R.RiskModel.from_dict({"schema": 1, "variants": {
        "labels+finetune": _var(("finetune_minus_scratch",), (-3.0,)),
        "labels+scratch": _var(("probe_minus_scratch",), (-3.0,)), "labels": _var(("gain",), (-1.0,)),
        "label-free": _var(("log_shift",), (0.5,))}})
    sig = {"gain": V(0.1, 0.02), "probe": V(0.6, 0.05), "scratch": V(0.7, 0.05)}
    behind = R.estimate({**sig, "finetune": V(0.5, 0.05)}, 100, 2, model=m)
    ahead = R.estimate({**sig, "finetune": V(0.95, 0.05)}, 100, 2, model=m)
    assert behind.variant == ahead.variant == "labels+finetune"
    assert behind.value > 0.9 > 0.1 > ahead.value          # fine-tuned below scratch on the same hold-out: negative
    assert "fine-tuned briefly on the sample 50 % against 70 % from scratch" in behind.reason
    plain = R.estimate(sig, 100, 2, model=m)               # no --finetune: the scratch model, no note
    assert plain.variant == "labels+scratch" and "fine-tun" not in plain.reason
    assert R.FEATURE_SIGNALS["finetune_minus_scratch"] == ("finetune", "scratch")
    f = R.features(R.evidence({**sig, "finetune": V(0.8, 0.05)}, 100, 2))
    assert f["finetune_minus_scratch"] == pytest.approx(0.1) and f["finetune_minus_probe"] == pytest.approx(0.2)


def test_fit_risk_reads_the_finetune_signal_from_the_pairs(tmp_path):
    from scripts.fit_risk import read_rows_v2

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("target,split,negative,n_images,n_classes,probe,gain,gain.sd,scratch,scratch_gt,finetune\n"
                     "t,dev,1,40,2,0.6,0.1,0.02,0.8,0.9,0.7\n")
    row = read_rows_v2(pairs)[0]["f"]
    assert row["finetune_minus_scratch"] == pytest.approx(-0.1) and row["finetune"] == 0.7


def test_a_run_with_finetune_everywhere_uses_the_finetune_rule_and_any_other_the_labels_rule():
    from proximity.ranking import V0, FitRule, fit_scores

    rules = {**V0, "labels": FitRule("probe", "single", (("probe", 1.0),)),
             "labels+finetune": FitRule("finetune", "single", (("finetune", 1.0),))}
    tuned = [{"probe": V(0.9), "finetune": V(0.5)}, {"probe": V(0.6), "finetune": V(0.8)}]
    rule, fits = fit_scores(tuned, "labels", rules=rules)
    assert rule.name == "finetune" and [f for f, _ in fits] == [0.5, 0.8] and fits[0][1] == ["finetune"]
    one_failed = [tuned[0], {"probe": V(0.6), "finetune": V(None, reason="failed: RuntimeError")}]
    assert fit_scores(one_failed, "labels", rules=rules)[0].name == "probe"          # not comparable: labels rule
    without = {k: v for k, v in rules.items() if k != "labels+finetune"}     # no such rule shipped
    assert fit_scores(tuned, "labels", rules=without)[0].name == "probe"
    assert fit_scores(tuned, "label-free", rules=rules)[0].name.startswith("v0")


@pytest.mark.parametrize("finetune_loss, kept", [(0.55, True), (0.605, False)])
def test_a_variant_is_judged_against_the_fallback_that_survives(monkeypatch, finetune_loss, kept):
    """labels+scratch is judged first; when it is dropped, labels+finetune must beat labels (the
    model it would really replace), not the dropped labels+scratch."""
    from scripts import fit_risk

    loss = {("gain",): 0.60, ("probe_minus_scratch",): 0.61, ("finetune_minus_scratch",): finetune_loss}
    monkeypatch.setattr(fit_risk, "loto_logloss", lambda rows, feats, lam: loss[tuple(feats)])
    variants = {name: {"features": list(f), "lambda": 1.0, "selection": []} for name, f in
                (("labels+finetune", ("finetune_minus_scratch",)), ("labels+scratch", ("probe_minus_scratch",)),
                 ("labels", ("gain",)))}
    rows = [{"f": {"gain": 0.1, "probe_minus_scratch": 0.0, "finetune_minus_scratch": 0.0}}]
    dropped = fit_risk.drop_unhelpful(variants, rows)
    assert dropped["labels+scratch"]["fallback"] == "labels"
    assert ("labels+finetune" in variants) == kept
    if not kept:      # 0.605 beats the dropped labels+scratch (0.61) but not labels (0.60) by the tie margin
        assert dropped["labels+finetune"]["fallback"] == "labels"


def test_a_fine_tune_without_a_from_scratch_result_says_what_to_add():
    m = R.RiskModel.from_dict({"schema": 1, "variants": {
        "labels+finetune": _var(("finetune_minus_scratch",), (-3.0,)),
        "labels+scratch": _var(("probe_minus_scratch",), (-3.0,)), "labels": _var(("gain",), (-1.0,)),
        "label-free": _var(("log_shift",), (0.5,))}})
    r = R.estimate({"gain": V(0.1, 0.02), "probe": V(0.6, 0.05), "finetune": V(0.7, 0.05)}, 100, 2, model=m)
    assert r.variant == "labels"
    assert "the fine-tune result is unused: no from-scratch result (give --scratch too)" in r.reason
    assert "from-scratch result is unused" not in r.reason


def test_the_shipped_fit_and_risk_do_not_use_finetune():
    """v2.5 shipped neither a labels+finetune risk variant nor a fit rule: a --finetune value
    changes no fit and no risk (what README and the CLI help say)."""
    from proximity.ranking import fit_scores

    base = [{"probe": V(p), "scratch": V(0.7, 0.05), "gain": V(g, 0.02), "logme": V(lm), "knn": V(p - 0.05),
             "sfda": V(lm / 2), "params": V(5.0 + i), "prior": V(None), "rankme_rel": V(1.2)}
            for i, (p, g, lm) in enumerate([(0.8, 0.2, 1.1), (0.6, 0.05, 0.7), (0.7, 0.1, 0.9)])]
    tuned = [{**s, "finetune": V(f, 0.05)} for s, f in zip(base, (0.3, 0.9, 0.5), strict=True)]
    assert [f for f, _ in fit_scores(tuned, "labels")[1]] == [f for f, _ in fit_scores(base, "labels")[1]]
    for a, b in zip(base, tuned, strict=True):
        ra, rb = R.estimate(a, 100, 2), R.estimate(b, 100, 2)
        assert (ra.value, ra.variant, ra.reason) == (rb.value, rb.variant, rb.reason) and ra.variant != "v0"


def test_the_fine_tune_key_changes_with_labels_and_recipe(backbones, monkeypatch):
    from proximity.data import sample_from_arrays

    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    smp = _sample()
    relabelled = sample_from_arrays([smp.images[i] for i in range(smp.n)],
                                    [smp.class_names[c] for c in smp.labels[::-1]])
    key = scratch.finetune_key(spec, smp, 0)
    assert scratch.finetune_key(spec, relabelled, 0) != key
    monkeypatch.setitem(scratch.FINETUNE_RECIPE, "backbone_lr", 3e-4)
    assert scratch.finetune_key(spec, smp, 0) != key


def test_repeated_value_is_the_mean_with_the_sd_of_the_mean():
    one = scratch.ScratchResult(0.75, 12, 28, 10, 3, 1.0, pretrained=True)
    single = scratch.repeated_value([one], [0], True)
    assert (single.value, single.sd, single.reason) == (0.75, one.sd, one.detail())   # one training: as before
    two = [scratch.ScratchResult(a, 100, 200, 10, 3, 1.0, pretrained=True) for a in (0.8, 0.9)]
    v = scratch.repeated_value(two, [4, 5], True)
    # sd(0.8, 0.9) = 0.0707, / sqrt(2) = 0.05, above the pooled binomial sqrt(0.85 * 0.15 / 200) = 0.025
    assert v.value == pytest.approx(0.85) and v.sd == pytest.approx(0.05)
    assert v.higher_is_better
    assert "fine-tuned from the pretrained weights: mean of 2 trainings (seeds 4–5" in v.reason
    assert "200/100 split" in v.reason and "80, 90 %" in v.reason and "sd of the mean 5.0 points" in v.reason
    same = [scratch.ScratchResult(0.5, 12, 28, 10, 3, 1.0)] * 3       # repeats that agree: the binomial floor
    flat = scratch.repeated_value(same, [0, 1, 2], True)
    assert flat.sd == pytest.approx((0.25 / 36) ** 0.5)
    assert flat.reason.startswith("accuracy from random weights: mean of 3 trainings")


def test_repeats_train_each_kind_once_per_seed_and_a_larger_k_trains_only_the_new_seeds(
        target_dir, backbones, fresh_cache, monkeypatch):
    import numpy as np

    import proximity

    calls, held = [], set()
    real = scratch._train

    def spy(*a, **k):
        out = real(*a, **k)
        calls.append((k["pretrained"], k["seed"], out.accuracy))
        held.add(out.n_holdout)
        return out

    monkeypatch.setattr(scratch, "_train", spy)
    models = [f"local-dir:{backbones['A']}"]
    r = proximity.rank(target_dir, models=models, finetune=True, scratch=True, repeats=2, seed=3)
    assert sorted((p, s) for p, s, _ in calls) == [(False, 3), (False, 4), (True, 3), (True, 4)]
    c = r.ranking[0]
    for kind, pretrained in (("finetune", True), ("scratch", False)):
        acc = [a for p, _, a in sorted(calls) if p is pretrained]
        got = c.signals[kind]
        assert got.value == pytest.approx(np.mean(acc))
        (n_holdout,) = held                             # one split size for every seed
        assert got.sd == pytest.approx(max(np.std(acc, ddof=1) / np.sqrt(2),
                                           np.sqrt(np.mean(acc) * (1 - np.mean(acc)) / (2 * n_holdout))))
        assert "mean of 2 trainings (seeds 3–4" in got.reason
    assert r.settings["repeats"] == 2 and r.ranking[0].risk is not None
    seed3 = next(a for p, s, a in calls if p and s == 3)
    calls.clear()
    more = proximity.rank(target_dir, models=models, finetune=True, scratch=True, repeats=3, seed=3)
    assert sorted((p, s) for p, s, _ in calls) == [(False, 5), (True, 5)]      # seeds 3 and 4 from the cache
    assert "mean of 3 trainings (seeds 3–5" in more.ranking[0].signals["finetune"].reason
    calls.clear()
    once = proximity.rank(target_dir, models=models, finetune=True, scratch=True, seed=3)
    assert calls == [] and once.settings["repeats"] == 1                       # the default: one, as before
    single = once.ranking[0].signals["finetune"]
    assert single.value == seed3 and "mean of" not in single.reason


def test_cli_repeats(target_dir, backbones, fresh_cache, tmp_path):
    from typer.testing import CliRunner

    from proximity.cli import app

    out = tmp_path / "r.json"
    base = ["rank", str(target_dir), "--model", f"local-dir:{backbones['A']}", "--format", "json", "--output", str(out)]
    res = CliRunner().invoke(app, [*base, "--finetune", "--repeats", "2"])
    assert res.exit_code == 0, res.output
    assert "each candidate fine-tuned on 70 % of the images (up to 30 epochs, 2 times, each on its own split)" \
        in " ".join(res.output.split())
    doc = json.loads(out.read_text())
    assert doc["settings"]["repeats"] == 2
    assert "mean of 2 trainings" in doc["ranking"][0]["signals"]["finetune"]["reason"]
    bad = CliRunner().invoke(app, [*base, "--finetune", "--repeats", "0"])
    assert bad.exit_code == 2 and "--repeats" in bad.output
    # said before any backbone runs (so a model that cannot load is enough to see it)
    idle = CliRunner().invoke(app, ["rank", str(target_dir), "--model", f"local-dir:{tmp_path / 'none'}",
                                    "--repeats", "3"])
    assert "--repeats 3 has nothing to repeat" in " ".join(idle.output.split())
    assert "--repeats" in CliRunner().invoke(app, ["rank", "--help"]).output
