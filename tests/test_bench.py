"""The benchmark's building blocks (scripts/bench), in their quick mode."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import ndtr

from scripts.bench import domains, pretrain

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench"


@pytest.mark.parametrize("name", ["stripes", "blobs", "shapes", "digits", "photos"])
def test_domains_are_seeded_labelled_64px_rgb(name):
    if name == "photos":
        pytest.importorskip("skimage", reason="needs the samples extra")
    a, la, names = domains.make(name, 3, seed=0)
    b, lb, _ = domains.make(name, 3, seed=0)
    assert a.shape == (3 * len(names), 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert sorted(set(la.tolist())) == list(range(len(names)))
    assert not np.array_equal(a, domains.make(name, 3, seed=1)[0])


def test_domains_differ_in_low_level_statistics():
    means = {n: domains.make(n, 20, 0)[0].astype(float) for n in ("stripes", "blobs", "shapes", "digits")}
    edges = {n: np.abs(np.diff(x, axis=2)).mean() for n, x in means.items()}
    assert len({round(v, 0) for v in edges.values()}) >= 3      # distinct edge energies


def test_quick_pretrain_builds_resumable_backbones_with_references(tmp_path, capsys):
    pretrain.main(["--quick", "--out", str(tmp_path)])
    first = capsys.readouterr().out
    assert first.count("built") == 3
    for p in pretrain.QUICK:
        folder = tmp_path / "backbones" / p.id
        meta = json.loads((folder / "bench.json").read_text())
        assert meta["key"] == p.key() and 0 <= meta["val_accuracy"] <= 1
        assert (folder / "model.safetensors").is_file() and (folder / "reference.npz").is_file()
    pretrain.main(["--quick", "--out", str(tmp_path)])
    assert capsys.readouterr().out.count("up-to-date") == 3


def test_plan_covers_the_issue_requirements():
    plans = pretrain.PLANS
    assert len(plans) >= 8 and len({p.domain for p in plans}) >= 5
    assert {p.arch for p in plans} >= {"test_resnet", "test_convnext"}   # a BN and a non-BN family


def test_targets_are_split_seeded_and_disjoint_from_each_other():
    from scripts.bench import targets
    names = [t.name for t in targets.TARGETS]
    assert len(names) >= 10 and len(set(names)) == len(names)
    assert {t.split for t in targets.TARGETS} == {"dev", "test"}
    assert sum(t.split == "test" for t in targets.TARGETS) >= 5
    a, la, _ = targets.make_target("digits", 0, 4)
    b, _, _ = targets.make_target("digits", 0, 4)
    c, _, _ = targets.make_target("digits-small", 0, 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)                       # same data, different stream per target


def test_quick_finetune_runs_resumes_and_records(tmp_path, capsys):
    from scripts.bench import finetune
    pretrain.main(["--quick", "--out", str(tmp_path), "--only", "resnet-stripes"])
    finetune.main(["--quick", "--out", str(tmp_path), "--targets", "stripes-new-angles"])
    recs = [json.loads(x) for x in (tmp_path / "groundtruth" / "jobs.jsonl").read_text().splitlines()]
    assert {(r["kind"], r["model"]) for r in recs} == {("finetune", "resnet-stripes"), ("scratch", "test_resnet")}
    assert all(0 <= r["test_acc"] <= 1 and r["n_test"] > 0 and r["protocol"] == finetune.PROTOCOL for r in recs)
    capsys.readouterr()
    finetune.main(["--quick", "--out", str(tmp_path), "--targets", "stripes-new-angles"])
    assert "0 job(s) run" in capsys.readouterr().out


def test_split_is_stratified_and_disjoint():
    from scripts.bench import finetune
    y = np.repeat(np.arange(3), 10)
    tr, va, te = finetune.split(y)
    assert len(set(tr) | set(va) | set(te)) == 30 and not (set(tr) & set(te)) and not (set(va) & set(te))
    assert all((y[te] == c).sum() == 3 for c in range(3))


def test_evaluation_metrics_known_answers(tmp_path):
    from scripts.bench import evaluate
    assert evaluate.auroc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0])) == 1.0
    assert evaluate.auroc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5
    assert np.isnan(evaluate.auroc(np.array([0.3, 0.4]), np.array([1, 1])))          # one class: undefined
    p, y = np.array([0.05, 0.1, 0.5, 0.55, 0.9]), np.array([0, 1, 0, 1, 1])
    assert evaluate.brier(p, y) == pytest.approx(np.mean((p - y) ** 2))
    np.testing.assert_allclose(evaluate.reliability(p, y), [(0.075, 0.5, 2), (0.525, 0.5, 2), (0.9, 1.0, 1)])
    acc = {"a": 0.9, "b": 0.7, "c": 0.5, "d": 0.4}
    tau, regret, hit = evaluate._metrics({"a": 4, "b": 3, "c": 2, "d": 1}, acc)
    assert tau == pytest.approx(1.0) and regret == 0.0 and hit == 1.0
    tau, regret, hit = evaluate._metrics({"a": 1, "b": 2, "c": 3, "d": 4}, acc)
    assert tau < 0 and regret == pytest.approx(0.5) and hit == 0.0
    lines = [{"kind": "finetune", "model": "m", "target": "t", "lr": lr, "seed": s, "val_acc": v, "test_acc": a}
             for lr, s, v, a in ((1e-3, 0, 0.5, 0.4), (3e-3, 0, 0.6, 0.5), (3e-3, 1, 0.0, 0.7), (3e-3, 2, 0.0, 0.6))]
    (tmp_path / "gt.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    ft, sc = evaluate.ground_truth(tmp_path / "gt.jsonl")
    assert ft == {("m", "t"): [0.5, 0.7, 0.6]} and sc == {}       # best lr by val accuracy, its 3 seeds


def test_quick_pipeline_end_to_end(tmp_path, capsys):
    """`scripts/bench/run.py --quick`: pretrain → fine-tune → evaluate on a tiny slice, results page included."""
    from scripts.bench import run
    run.main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    page = (tmp_path / "results" / "RESULTS.md").read_text()
    assert "## dev targets (1)" in page and "## test targets (1)" in page
    for ranker in ("proximity (labels)", "proximity (label-free)", "logme", "prior (source accuracy)",
                   "random (200 draws)"):
        assert f"| {ranker} |" in page
    assert "## Cost" in page and "## Negative-transfer risk on test targets" in page
    rows = (tmp_path / "results" / "pairs.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3                     # header + 2 targets × 3 backbones
    assert {"probe", "gain", "early_shift", "negative", "ft_mean", "scratch_mean"} <= set(rows[0].split(","))
    jobs = [json.loads(x) for x in (tmp_path / "groundtruth" / "jobs.jsonl").read_text().splitlines()]
    assert len(jobs) == 2 * (3 + 2) * 3               # targets × (backbones + scratch archs) × seeds
    assert "== done" in out
    pytest.importorskip("matplotlib")
    assert (tmp_path / "results" / "tau.png").stat().st_size > 1000


# --- protocol 2 (benchmark v2) ------------------------------------------------------------------

def test_v2_split_was_written_first_and_matches_the_code():
    """The committed split (results/v2/split.json) is the code's split; the issue's counts hold."""
    from scripts.bench import targets_v2

    doc = json.loads((BENCH / "results" / "v2" / "split.json").read_text())
    assert {t["name"]: t["split"] for t in doc["targets"]} == {t.name: t.split for t in targets_v2.TARGETS}
    splits = [t.split for t in targets_v2.TARGETS]
    assert len(splits) >= 24 and splits.count("dev") >= 12 and splits.count("test") >= 12
    assert sum(t.n_per_class <= 10 for t in targets_v2.TARGETS) >= 6
    assert sum(t.group == "none" or "near none" in t.relation for t in targets_v2.TARGETS) >= 6


def test_v3_fresh_test_set_was_written_first_and_the_shipped_rules_are_the_frozen_ones():
    """Protocol 3 (results/v3/split.json) is the code's twelve test targets, record for record, each
    group three times; until its reading, the shipped rules are the ones whose digests it recorded
    (a change before the reading would be a choice made after defining the test set); once read,
    the page's state records that every frozen check held."""
    from scripts.bench import evaluate_v2, targets_v2, targets_v3

    doc = json.loads((BENCH / "results" / "v3" / "split.json").read_text())
    code = [{"name": t.name, "split": t.split, "group": t.group, "relation": t.relation, "n_per_class": t.n_per_class,
             "flip_ok": targets_v3.flip_ok(t.name)} for t in targets_v3.TARGETS]
    assert [{k: r[k] for k in code[0]} for r in doc["targets"]] == code
    assert {t.split for t in targets_v3.TARGETS} == {"test"} and len(targets_v3.TARGETS) == 12
    groups = [t.group for t in targets_v3.TARGETS]
    assert doc["counts"]["test"] == {g: groups.count(g) for g in groups} == {"near": 3, "shifted": 3, "small": 3,
                                                                             "none": 3}
    assert not {t.name for t in targets_v3.TARGETS} & {t.name for t in targets_v2.TARGETS}
    reading = BENCH / "results" / "v3" / "state.json"
    if reading.is_file():      # read: the page recorded that what ran was what was frozen (later protocols may move on)
        frozen = json.loads(reading.read_text())["frozen"]
        assert len(frozen) == 5 and all(frozen.values()), frozen
    else:                      # not read yet: the shipped rule files are still the frozen ones
        assert all(evaluate_v2.frozen_rules().values())


def test_v3_targets_are_the_recorded_data_balanced_and_shaped_like_v2s():
    """Every fresh target's images and labels are the ones split.json's digests recorded (a builder
    or a library that draws them changed: this fails), each class the same size, 64 px RGB."""
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    from scripts.bench import evaluate_v2, targets_v3

    doc = {r["name"]: r for r in json.loads((BENCH / "results" / "v3" / "split.json").read_text())["targets"]}
    for t in targets_v3.TARGETS:
        assert evaluate_v2.data_digest(targets_v3, t.name) == doc[t.name]["data_sha256"], t.name
        xu, yu, xt, yt, names = targets_v3.make_target(t.name)
        assert xu.shape[1:] == xt.shape[1:] == (64, 64, 3) and xu.dtype == xt.dtype == np.uint8
        assert np.bincount(yu).tolist() == [t.n_per_class] * len(names) == [doc[t.name]["n_user"] // len(names)] * \
            doc[t.name]["n_classes"]
        assert len(set(np.bincount(yt).tolist())) == 1 and len(yt) == doc[t.name]["n_test"]
    again = targets_v3.make_target("spectrograms", 0, 3, 2)
    assert all(np.array_equal(p, q) for p, q in zip(again[:4], targets_v3.make_target("spectrograms", 0, 3, 2)[:4],
                                                    strict=True))
    assert not np.array_equal(targets_v3.make_target("spectrograms", 1, 3, 2)[0], again[0])
    with pytest.raises(KeyError, match="unknown protocol-3 target"):
        targets_v3.make_target("digits")


def test_v3_ground_truth_jobs_use_protocol_2s_recipe_on_the_new_targets(tmp_path, capsys):
    from scripts.bench import finetune

    job = finetune.Job("finetune", "m", "signal-plots", 1e-3, 0, n_per_class=3, protocol=3)
    imgs, labels, tr, va, te, k = finetune.job_data(job)
    assert k == 4 and len(tr) + len(va) == 12 and len(te) == 24 and imgs.shape == (36, 64, 64, 3)
    done = {finetune.Job("finetune", "m", "signal-plots", lr, 0, protocol=3).key(): {"val_acc": v}
            for lr, v in zip(finetune.LRS, (0.5, 0.9, 0.7), strict=True)}
    jobs = finetune.plan_stage([("finetune", "m")], ["signal-plots"], done, False, protocol=3)
    assert [(j.lr, j.seed, j.protocol) for j in jobs] == [(1e-3, s, 3) for s in (1, 2, 3, 4)]
    assert [j.epochs for j in jobs] == [finetune.Job("finetune", "m", "t", 1e-3, 0, protocol=2).epochs] * 4
    # protocol 2's backbones folder and protocol 3's own store by default (nothing trained: --max-jobs 0)
    finetune.main(["--protocol", "3", "--max-jobs", "0", "--out", str(tmp_path)])
    assert f"in {finetune.RESULTS_V3 / 'groundtruth.jsonl'}" in capsys.readouterr().out
    from scripts.bench import targets_v3
    assert [targets_v3.flip_ok(n) for n in ("stripes-small", "glyphs-digits", "signal-plots", "cells-brightfield",
                                            "phantom-lesion")] == [False, False, False, True, True]


def test_v4_fresh_test_set_was_written_after_the_selection_and_before_its_ground_truth():
    """Protocol 4: PROTOCOL.md declared the candidates before the selection; the shipped fit rule is
    that selection (its tables are exactly the declared candidates, its choice follows the declared
    rule); results/v4/split.json is the code's twelve test targets, each group three times, and
    until the reading the shipped rule files are the ones whose digests it recorded."""
    from scripts.bench import evaluate_v2, targets_v2, targets_v3, targets_v4

    doc = json.loads((BENCH / "results" / "v4" / "split.json").read_text())
    code = [{"name": t.name, "split": t.split, "group": t.group, "relation": t.relation, "n_per_class": t.n_per_class,
             "flip_ok": targets_v4.flip_ok(t.name)} for t in targets_v4.TARGETS]
    assert [{k: r[k] for k in code[0]} for r in doc["targets"]] == code
    groups = [t.group for t in targets_v4.TARGETS]
    assert doc["counts"]["test"] == {g: groups.count(g) for g in groups} == {"near": 3, "shifted": 3, "small": 3,
                                                                             "none": 3}
    names = {t.name for t in targets_v4.TARGETS}
    earlier = {t.name for t in targets_v2.TARGETS} | {t.name for t in targets_v3.TARGETS}
    assert len(names) == 12 and not names & earlier
    reading = BENCH / "results" / "v4" / "state.json"
    if reading.is_file():      # read: the page recorded that what ran was what was frozen
        assert all(json.loads(reading.read_text())["frozen"].values())
    else:                      # not read yet: the shipped rule files are still the frozen ones
        assert all(evaluate_v2.frozen_rules(BENCH / "results" / "v4" / "split.json").values())
    # the shipped fit rule is protocol 4's selection: the declared candidates, the declared choice
    rule = json.loads((BENCH.parents[1] / "catalog" / "fit_rule.json").read_text())
    assert rule["protocol"] == "protocol 4" and len(rule["dev_targets"]) == 40
    declared = evaluate_v2.candidates_v4()
    assert {m: [r["name"] for r in t] for m, t in rule["selection"].items()} == \
        {m: [c["name"] for c in cs] for m, cs in declared.items()}
    for mode, table in rule["selection"].items():       # simplest within 0.01 of the best, then regret
        size = {c["name"]: evaluate_v2.n_terms(c) for c in declared[mode]}
        top = max(r["loto_tau"] for r in table)
        pick = min((r for r in table if r["loto_tau"] >= top - 0.01),
                   key=lambda r: (size[r["name"]], r["loto_regret"], -r["loto_tau"]))
        assert rule["rules"].get(mode, rule["rules"]["labels"])["name"] == pick["name"], mode


def test_v4_targets_are_the_recorded_data_and_their_jobs_protocol_2s_recipe():
    from scripts.bench import evaluate_v2, finetune, targets_v4

    doc = {r["name"]: r for r in json.loads((BENCH / "results" / "v4" / "split.json").read_text())["targets"]}
    for t in targets_v4.TARGETS:
        # the digest the protocol-4 page checks before reading (evaluate_v2.data_digest) is split.json's
        assert evaluate_v2.data_digest(targets_v4, t.name) == doc[t.name]["data_sha256"], t.name
        xu, yu, xt, yt, names = targets_v4.make_target(t.name)
        assert xu.shape[1:] == xt.shape[1:] == (64, 64, 3) and xu.dtype == np.uint8
        assert np.bincount(yu).tolist() == [t.n_per_class] * len(names) and len(set(np.bincount(yt).tolist())) == 1
    with pytest.raises(KeyError, match="unknown protocol-4 target"):
        targets_v4.make_target("charts-and-graphs")
    assert [targets_v4.flip_ok(n) for n in ("glyphs-lowercase", "ca-rules-small", "blobs-directional-grey",
                                            "charts")] == [False, False, False, True]
    job = finetune.Job("finetune", "m", "julia-sets", 1e-3, 0, n_per_class=3, protocol=4)
    imgs, labels, tr, va, te, k = finetune.job_data(job)
    assert k == 4 and len(tr) + len(va) == 12 and len(te) == 24
    done = {finetune.Job("finetune", "m", "julia-sets", lr, 0, protocol=4).key(): {"val_acc": v}
            for lr, v in zip(finetune.LRS, (0.9, 0.5, 0.7), strict=True)}
    jobs = finetune.plan_stage([("finetune", "m")], ["julia-sets"], done, False, protocol=4)
    assert [(j.lr, j.seed, j.protocol) for j in jobs] == [(3e-4, s, 4) for s in (1, 2, 3, 4)]


def test_selection_prefers_the_simplest_candidate_within_the_margin_and_refuses_moved_versions(tmp_path):
    """``select(simplest_within=…)``: a one-term candidate within the margin of a better two-term one
    wins; without the margin the best τ wins. ``select_stored`` refuses a page scored with other
    signal versions. The declared exclusion drops a target only when every start is near chance."""
    from proximity.signals import SignalValue
    from scripts.bench import evaluate_v2

    rng = np.random.default_rng(0)
    data = {}
    for t in range(5):
        acc = {f"m{i}": float(a) for i, a in enumerate(rng.uniform(0.3, 0.9, 6))}
        sig = {m: {"logme": SignalValue(a + rng.normal(0, 0.05)), "knn": SignalValue(a + rng.normal(0, 0.05))}
               for m, a in acc.items()}
        data[f"t{t}"] = (sig, acc)
    cands = {"labels": [{"name": "logme", "kind": "single", "terms": [["logme", 1.0]]},
                        {"name": "z-mean(logme, knn)", "kind": "z-mean", "terms": [["logme", 1.0], ["knn", 1.0]]}]}
    plain = evaluate_v2.select(data, list(data), {}, cands)["labels"]
    taus = {r["name"]: r["loto_tau"] for r in plain["table"]}
    assert taus["z-mean(logme, knn)"] > taus["logme"] and plain["rule"]["name"] == "z-mean(logme, knn)"
    gap = taus["z-mean(logme, knn)"] - taus["logme"]
    pick = lambda margin: evaluate_v2.select(data, list(data), {}, cands,  # noqa: E731
                                             simplest_within=margin)["labels"]["rule"]["name"]
    assert pick(gap + 1e-9) == "logme" and pick(gap - 1e-6) == "z-mean(logme, knn)"
    state = {"targets": ["t0"], "rules": {"labels": {"versions": {"logme": 99}}}, "rows": []}
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(SystemExit, match="signal versions changed"):
        evaluate_v2.select_stored(tmp_path / "state.json", tmp_path / "fit_rule.json")
    # a candidate's term the page's rules did not use: caught from the target's scores when they are at hand
    (tmp_path / "state.json").write_text(json.dumps({**state, "rules": {"labels": {"versions": {}}}}))
    (tmp_path / "scores").mkdir()
    (tmp_path / "scores" / "t0.json").write_text(json.dumps({"versions": {"labels": {"nleep": 99}}}))
    with pytest.raises(SystemExit, match="nleep"):
        evaluate_v2.select_stored(tmp_path / "state.json", tmp_path / "fit_rule.json", tmp_path / "scores")

    from scripts.bench import targets_v4
    t = next(t for t in targets_v4.TARGETS if t.name == "charts")            # four classes: chance 0.25
    gt = {"finetune": {("b", "charts"): {"mean": 0.29}}, "scratch": {("a", "charts"): {"mean": 0.26}}}
    assert evaluate_v2.at_chance([t], gt, ["b"], ["a"]) == {"charts": {"chance": 0.25, "best": 0.29, "worst": 0.26}}
    gt["scratch"][("a", "charts")]["mean"] = 0.31                               # one start learned something
    assert evaluate_v2.at_chance([t], gt, ["b"], ["a"]) == {}
    gt["scratch"][("a", "charts")]["mean"] = 0.19                               # one start well below chance
    assert evaluate_v2.at_chance([t], gt, ["b"], ["a"]) == {}


def test_v2_plans_cover_four_families_eight_domains_and_a_generalist():
    archs = {p.arch for p in pretrain.PLANS_V2}
    assert len(pretrain.PLANS_V2) >= 14 and {"test_resnet", "test_convnext", "test_vit", "test_efficientnet"} <= archs
    assert len({p.domain for p in pretrain.PLANS_V2} - {"all"}) >= 7
    assert [p.domain for p in pretrain.PLANS_V2 if p.arch == "wide_resnet"] == ["all"]


def test_v2_ground_truth_chooses_the_lr_on_seed_0_and_averages_seeds_1_to_4(tmp_path):
    from scripts.bench import evaluate_v2

    recs = [{"kind": "finetune", "model": "m", "target": "t", "lr": lr, "seed": 0, "val_acc": v, "test_acc": 0.0,
             "protocol": 2} for lr, v in ((1e-3, 0.5), (3e-3, 0.7))]
    recs += [{"kind": "finetune", "model": "m", "target": "t", "lr": 3e-3, "seed": s, "val_acc": 0, "test_acc": a,
              "protocol": 2} for s, a in zip((1, 2, 3, 4), (0.6, 0.8, 0.7, 0.9), strict=True)]
    store = tmp_path / "gt.jsonl"
    store.write_text("\n".join(json.dumps(r) for r in recs))
    gt = evaluate_v2.ground_truth(store)
    assert gt["finetune"][("m", "t")]["lr"] == 3e-3 and gt["finetune"][("m", "t")]["mean"] == pytest.approx(0.75)
    store.write_text("\n".join(json.dumps(r) for r in recs[:-1]))      # seed 4 missing: not complete
    assert evaluate_v2.ground_truth(store)["finetune"] == {}
    m = evaluate_v2.metrics({"a": 3, "b": 2, "c": 1}, {"a": 0.9, "b": 0.8, "c": 0.5})
    assert m == {"tau": pytest.approx(1.0), "regret": 0.0, "top1": 1.0, "top3": 1.0}
    assert evaluate_v2.metrics({"a": 1, "b": 2, "c": 3},
                               {"a": 0.9, "b": 0.8, "c": 0.5})["regret"] == pytest.approx(40.0)


def test_v2_quick_pipeline_end_to_end(tmp_path, capsys):
    """`run.py --protocol 2 --quick`: pretrain → fine-tune (4 seeds) → evaluate_v2 with the fit
    selection, summary.json in the issue's schema."""
    from scripts.bench import run
    if not domains.FASHION.is_dir():
        pytest.skip(f"needs Debian's dataset-fashion-mnist ({domains.FASHION}; .ci/run installs it): "
                    "the generalist's union")
    run.main(["--protocol", "2", "--quick", "--out", str(tmp_path)])
    res = tmp_path / "v2" / "results"
    summary = json.loads((res / "summary.json").read_text())
    for split in ("dev", "test"):
        d = summary["splits"][split]
        assert d["n_targets"] == 2 and "noise_ceiling" in d
        r = d["rankers"]
        assert {"proximity (labels)", "proximity (label-free)", "logme", "sfda", "random"} <= set(r)
        assert r["logme"]["kind"] == "signal" and r["logme"]["labels"] and not r["rankme"]["labels"]
        assert set(r["proximity (labels)"]) >= {"kind", "labels", "tau", "ci", "regret_pts", "top1"}
        for risk in d["risk"].values():          # quick samples are tiny: the risk may be "unknown" (absent)
            assert set(risk) >= {"auroc", "brier", "base_brier", "ece", "pairs"}
    rule = json.loads((res / "fit_rule.json").read_text())
    assert set(rule["selection"]) == {"labels", "label-free", "labels+finetune"}
    assert all(len(t) <= 20 for t in rule["selection"].values())
    # the --finetune rule ships only when dev chose something other than the labels rule
    tuned = rule["rules"].get("labels+finetune")
    assert {"labels", "label-free"} <= set(rule["rules"]) and (tuned is None) == ("not_shipped" in rule)
    assert tuned is None or tuned != rule["rules"]["labels"]
    assert "finetune" in r and r["finetune"]["labels"]                       # --finetune scored, a signal row
    assert rule["dev_targets"] == ["cells-counts", "textures-small"]        # test targets never read
    jobs = (tmp_path / "v2" / "groundtruth" / "jobs.jsonl").read_text().splitlines()
    assert len(jobs) == 4 * (4 + 4) * 5           # targets × (backbones + scratch archs) × (1 lr + 4 seeds)
    assert "| proximity (labels) |" in (res / "RESULTS.md").read_text()

    # protocol 3 on the same backbones: one fresh test target, read with the shipped rules
    from scripts.bench import evaluate_v2, finetune
    store3 = tmp_path / "v3" / "jobs.jsonl"
    finetune.main(["--quick", "--protocol", "3", "--out", str(tmp_path), "--store", str(store3),
                   "--targets", "signal-plots"])
    assert {json.loads(x)["protocol"] for x in store3.read_text().splitlines()} == {3}
    with pytest.raises(SystemExit, match="shipped rules"):
        evaluate_v2.main(["--quick", "--select", "--out", str(tmp_path), "--store", str(tmp_path / "v2" / "groundtruth"
                          / "jobs.jsonl"), "--fresh", str(store3), "--results", str(tmp_path / "v3res")])
    evaluate_v2.main(["--quick", "--out", str(tmp_path), "--store", str(tmp_path / "v2" / "groundtruth" / "jobs.jsonl"),
                      "--fresh", str(store3), "--results", str(tmp_path / "v3res"),
                      "--base-state", str(res / "state.json")])
    s3 = json.loads((tmp_path / "v3res" / "summary.json").read_text())
    assert s3["protocol"].startswith("protocol 3")
    assert {k: v["n_targets"] for k, v in s3["splits"].items()} == {"dev": 2, "test": 2, evaluate_v2.FRESH: 1,
                                                                  evaluate_v2.POOLED: 3}
    assert "proximity (labels)" in s3["splits"][evaluate_v2.FRESH]["rankers"]
    page3 = (tmp_path / "v3res" / "RESULTS.md").read_text()
    assert f"## {evaluate_v2.FRESH} targets" in page3
    # the quick base page ran rules chosen on its own dev, not the shipped ones (and the shipped files are
    # protocol 4's now, not those protocol 3 froze): the page must say so
    changed = next(x for x in page3.splitlines() if "**Changed since the set was defined:" in x)
    assert "rules = protocol 2's page's" in changed and "catalog/fit_rule.json" in changed
    # a partial fresh set is never read as the whole (outside --quick), nor joined to a protocol-3 state
    with pytest.raises(SystemExit, match="read once, on all 12 fresh targets: 11 lack"):
        evaluate_v2.main(["--out", str(tmp_path), "--store", str(tmp_path / "v2" / "groundtruth" / "jobs.jsonl"),
                          "--fresh", str(store3), "--results", str(tmp_path / "v3full")])
    with pytest.raises(SystemExit, match="already holds fresh targets"):
        evaluate_v2.main(["--quick", "--out", str(tmp_path), "--store", str(tmp_path / "v2" / "groundtruth" /
                          "jobs.jsonl"), "--fresh", str(store3), "--results", str(tmp_path / "v3again"),
                          "--base-state", str(tmp_path / "v3res" / "state.json")])
    # only the fresh target was scored; protocol 2's figures are the base page's, unchanged
    base = json.loads((res / "state.json").read_text())
    state3 = json.loads((tmp_path / "v3res" / "state.json").read_text())
    assert state3["targets"] == base["targets"] + ["signal-plots"] and list(state3["seconds"]) == [*base["seconds"],
                                                                                                   "signal-plots"]
    assert s3["splits"]["test"]["rankers"]["logme"]["tau"] == pytest.approx(summary["splits"]["test"]["rankers"]
                                                                              ["logme"]["tau"])

    # protocol 4: one fresh target of targets_v4, read alone with the shipped rules and the frozen checks
    store4 = tmp_path / "v4" / "jobs.jsonl"
    finetune.main(["--quick", "--protocol", "4", "--out", str(tmp_path), "--store", str(store4), "--targets", "charts"])
    assert {json.loads(x)["protocol"] for x in store4.read_text().splitlines()} == {4}
    with pytest.raises(SystemExit, match="reads its fresh targets alone"):
        evaluate_v2.main(["--quick", "--out", str(tmp_path), "--store", str(tmp_path / "v2" / "groundtruth" /
                          "jobs.jsonl"), "--fresh", str(store4), "--fresh-protocol", "4", "--results",
                          str(tmp_path / "v4res"), "--base-state", str(res / "state.json")])
    evaluate_v2.main(["--quick", "--out", str(tmp_path), "--store", str(tmp_path / "v2" / "groundtruth" / "jobs.jsonl"),
                      "--fresh", str(store4), "--fresh-protocol", "4", "--results", str(tmp_path / "v4res")])
    s4 = json.loads((tmp_path / "v4res" / "summary.json").read_text())
    assert s4["protocol"].startswith("protocol 4") and list(s4["splits"]) == [evaluate_v2.FRESH_V4]
    assert {"proximity (labels)", "proximity (label-free)", "logme"} <= \
        set(s4["splits"][evaluate_v2.FRESH_V4]["rankers"])
    state4 = json.loads((tmp_path / "v4res" / "state.json").read_text())
    assert state4["targets"] == ["charts"] and state4["excluded"] == {}
    assert set(state4["frozen"]) >= {"catalog/fit_rule.json", "catalog/risk_model.json",
                                     "rules as loaded = catalog/fit_rule.json"}
    assert "**Protocol 4**" in (tmp_path / "v4res" / "RESULTS.md").read_text()


def test_v2_risk_summary_reliability_and_brier_skill_known_answers():
    from scripts.bench import evaluate_v2

    rows = [{"risk": p, "risk_label_free": 0.5, "negative": y}
            for p, y in ((0.05, 0), (0.15, 0), (0.15, 1), (0.85, 1), (0.95, 1), (0.95, 0))]
    s = evaluate_v2.risk_summary(rows)["labels"]
    p, y = np.array([r["risk"] for r in rows]), np.array([r["negative"] for r in rows])
    assert s["brier"] == pytest.approx(np.mean((p - y) ** 2)) and s["base_brier"] == pytest.approx(0.25)
    assert s["brier_skill"] == pytest.approx(1 - s["brier"] / 0.25)
    bins = {(round(b["lo"], 1), b["pairs"], round(b["predicted"], 3), round(b["observed"], 3)) for b in s["bins"]}
    assert bins == {(0.0, 1, 0.05, 0.0), (0.1, 2, 0.15, 0.5), (0.8, 1, 0.85, 1.0), (0.9, 2, 0.95, 0.5)}
    # ECE = Σ (pairs / n) · |predicted − observed| over the same bins
    assert s["ece"] == pytest.approx((1 * 0.05 + 2 * 0.35 + 1 * 0.15 + 2 * 0.45) / 6)
    free = evaluate_v2.risk_summary(rows)["label-free"]
    assert free["brier_skill"] == pytest.approx(0.0) and free["auroc"] == pytest.approx(0.5)
    svg = evaluate_v2.reliability_svg({"labels": s["bins"]}, "t")
    assert svg.startswith("<svg") and svg.count("<circle") == 4


def test_v2_metrics_of_ties_and_constant_scores():
    """A ranker that gives every backbone the same score (SFDA saturating at 1 on a tiny sample)
    orders nothing: τ 0, and its top pick is a draw among the tied (expected regret, top-1)."""
    from scripts.bench import evaluate_v2

    acc = {"a": 0.9, "b": 0.8, "c": 0.5, "d": 0.7}
    m = evaluate_v2.metrics({k: 1.0 for k in acc}, acc)
    assert m["tau"] == 0.0 and m["regret"] == pytest.approx(100 * (0.9 - np.mean(list(acc.values()))))
    assert m["top1"] == pytest.approx(0.25)
    m = evaluate_v2.metrics({"a": 2.0, "b": 2.0, "c": 1.0, "d": 0.0}, acc)
    assert m["regret"] == pytest.approx(5.0) and m["top1"] == pytest.approx(0.5) and np.isfinite(m["tau"])


def test_zoo_tier_page_with_a_member_whose_ground_truth_is_partial():
    """The real-zoo section while a member's ground truth is still being made: its missing cells
    are '—', the picks are counted over every target and over the targets with all members."""
    from scripts.bench.evaluate import zoo_lines

    members = ["a.x", "b.y", "c.z"]
    targets = ["stripes-new-angles", "shapes-new"]
    ft = {"a.x|stripes-new-angles": [0.5, 0.6, 0.55], "b.y|stripes-new-angles": [0.7, 0.7, 0.7],
          "c.z|stripes-new-angles": [0.4, 0.4, 0.4], "a.x|shapes-new": [0.9, 0.9, 0.9], "b.y|shapes-new": [0.8] * 3}
    sc = {k: [0.3] * 3 for k in ft}
    z = {"members": members, "missing": [], "targets": targets,
         "avail": {"stripes-new-angles": members, "shapes-new": ["a.x", "b.y"]},
         "ft": ft, "sc": sc, "prior": {"a.x": 70.0, "b.y": 75.0, "c.z": None}, "rows": [],
         "picks": {"stripes-new-angles": {"proximity (labels)": "b.y", "logme": "a.x"},
                   "shapes-new": {"proximity (labels)": "b.y", "logme": "a.x"}},
         "seconds": {t: {"labels": 1.0, "label-free": 1.0} for t in targets}, "job_s": 60.0, "devices": ["cpu"],
         "job_s_by_device": {"cpu": 60.0}}
    text = "\n".join(zoo_lines(z))
    assert "c.z on 1 of 2 targets" in text
    row = next(line for line in text.splitlines() if line.startswith("| shapes-new |"))
    assert row.count("—") == 2 and "| a |" in row                     # c.z fine-tuned and scratch; best: a
    assert "| proximity (labels) | 1 / 2 | 5.0 pts | 1 / 1, 0.0 pts |" in text
    assert "| logme | 1 / 2 | 7.5 pts | 0 / 1, 15.0 pts |" in text


def _seed_rows(rng, n_pairs, gap, noise, split="s"):
    """Pairs of one architecture per target: fine-tuned seeds around ``gap`` (± per pair), from
    scratch around 0, both with ``noise`` per seed."""
    rows = []
    for i in range(n_pairs):
        mu = gap * (1 if i % 2 else -1)
        ft, sc = mu + noise * rng.standard_normal(4), noise * rng.standard_normal(4)
        rows.append({"split": split, "target": f"t{i // 4}", "backbone": f"b{i % 4}", "arch": f"a{i % 4}",
                     "ft": ft, "sc": sc, "negative": int(ft.mean() < sc.mean())})
    return rows


def test_risk_ceiling_known_answers():
    """Labels that seeds reproduce exactly give a ceiling of 1; labels that are seed luck give 0.5
    and no Brier skill, split-half and oracle alike (the oracle shrinks the observed differences by
    the seed noise: taking them for the truth gave AUROC 0.83 and skill 0.33 on pure luck)."""
    from scripts.bench import risk_ceiling

    rng = np.random.default_rng(0)
    clear = risk_ceiling.ceilings(_seed_rows(rng, 200, gap=0.3, noise=0.01))["s"]
    assert clear["pairs"] == 200 and clear["negative"] == 100
    assert clear["split_half_auroc"] == pytest.approx(1.0)
    assert clear["oracle"]["auroc"] == pytest.approx(1.0) and clear["oracle"]["brier_skill"] == pytest.approx(1.0)
    luck = risk_ceiling.ceilings(_seed_rows(rng, 800, gap=0.0, noise=0.1), draws=50)["s"]
    assert abs(luck["split_half_auroc"] - 0.5) < 0.05
    assert abs(luck["oracle"]["auroc"] - 0.5) < 0.05 and abs(luck["oracle"]["brier_skill"]) < 0.05
    assert luck["oracle"]["shrinkage"] < 0.1 and clear["oracle"]["shrinkage"] > 0.99
    mid = risk_ceiling.ceilings(_seed_rows(rng, 800, gap=0.05, noise=0.1), draws=50)["s"]
    assert luck["split_half_auroc"] < mid["split_half_auroc"] < clear["split_half_auroc"]
    assert luck["oracle"]["auroc"] < mid["oracle"]["auroc"] < clear["oracle"]["auroc"]
    # gap ±0.05 against a difference's noise sd 0.1 * sqrt(2 / 4) ≈ 0.071: a pair of the −gap half
    # is negative with q = Φ(0.05 / 0.071), one of the +gap half with 1 − q, and a perfect model
    # (two scores, ties counted half) has AUROC q² + q(1 − q) = q ≈ 0.76
    q = ndtr(0.05 / np.sqrt(0.1 ** 2 * 2 / 4))
    assert mid["oracle"]["auroc"] == pytest.approx(q, abs=0.04)
    assert mid["oracle"]["shrinkage"] == pytest.approx(np.sqrt(0.05 ** 2 / (0.05 ** 2 + 0.005)), abs=0.06)


def test_risk_ceiling_seed0_auroc_and_its_direction():
    """The seed-0 figure scores the sample's own validation difference, fine-tuned − from scratch:
    lower means negative, and it is read per pair from its backbone and its architecture."""
    from scripts.bench import risk_ceiling

    rng = np.random.default_rng(1)
    rows = _seed_rows(rng, 40, gap=0.3, noise=0.01)
    seed0 = {}
    for r in rows:
        seed0[("finetune", r["backbone"], r["target"])] = 0.5 + (0.2 if not r["negative"] else -0.2)
        seed0[("scratch", r["arch"], r["target"])] = 0.5
    assert risk_ceiling.ceilings(rows, draws=5, seed0=seed0)["s"]["seed0_validation_auroc"] == 1.0
    flipped = {k: (1 - v if k[0] == "finetune" else v) for k, v in seed0.items()}
    assert risk_ceiling.ceilings(rows, draws=5, seed0=flipped)["s"]["seed0_validation_auroc"] == 0.0


def test_risk_ceiling_reads_the_pages_labels_and_finds_stalled_runs(tmp_path):
    from scripts.bench import risk_ceiling

    recs = []
    # stalled = best epoch the first AND ≥ 0.2 below the best seed: the 0.25 only (the 0.8 stopped at its
    # first epoch 0.15 below the best; the 0.6 is 0.3 below but learned past its first epoch)
    for kind, model, accs in (("finetune", "b", (0.9, 0.8, 0.85, 0.95)), ("scratch", "a", (0.9, 0.25, 0.8, 0.6))):
        recs.append({"kind": kind, "model": model, "target": "t", "lr": 1e-3, "seed": 0, "val_acc": 0.5,
                     "test_acc": 0.5, "best_epoch": 3, "protocol": 2})
        recs += [{"kind": kind, "model": model, "target": "t", "lr": 1e-3, "seed": s, "val_acc": 0.5, "test_acc": a,
                  "best_epoch": 0 if a in (0.25, 0.8) else 5, "protocol": 2}
                 for s, a in zip((1, 2, 3, 4), accs, strict=True)]
    store = tmp_path / "gt.jsonl"
    store.write_text("\n".join(json.dumps(r) for r in recs))
    assert risk_ceiling.stalled_runs([store]) == {("finetune", "b", "t"): 0, ("scratch", "a", "t"): 1}
    acc = risk_ceiling.seed_accuracies([store])
    head = "split,target,backbone,arch,negative\n"
    (tmp_path / "pairs.csv").write_text(head + "s,t,b,a,0\n")        # 0.875 > 0.64: not negative
    rows = risk_ceiling.load_pairs(tmp_path / "pairs.csv", acc)
    assert rows[0]["ft"].tolist() == [0.9, 0.8, 0.85, 0.95] and rows[0]["negative"] == 0
    (tmp_path / "pairs.csv").write_text(head + "s,t,b,a,1\n")        # a page from another ground truth
    with pytest.raises(ValueError, match="different ground truth"):
        risk_ceiling.load_pairs(tmp_path / "pairs.csv", acc)
    res = risk_ceiling.ceilings(rows * 2, draws=5, stalls=risk_ceiling.stalled_runs([store]))["s"]
    assert res["scratch_runs"] == 4 and res["scratch_runs_stalled"] == 1 and res["pairs_on_a_stalled_scratch"] == 2
    assert risk_ceiling.seed_validations([store]) == {("finetune", "b", "t"): dict.fromkeys((1, 2, 3, 4), 0.5),
                                                      ("scratch", "a", "t"): dict.fromkeys((1, 2, 3, 4), 0.5)}
    recs.append({**recs[0], "lr": 3e-3, "val_acc": 0.75})              # seed 0 at a second rate: the best counts
    store.write_text("\n".join(json.dumps(r) for r in recs))
    assert risk_ceiling.seed0_validation([store]) == {("finetune", "b", "t"): 0.75, ("scratch", "a", "t"): 0.5}


def test_zoo_tier_tau_over_the_members():
    """The zoo tier's weighted τ per ranker, over the targets with every member: the fit as given,
    lower-is-better signals turned round, an unknown ImageNet top-1 ranked last under the prior;
    a target a member lacks is left out."""
    from scripts.bench.evaluate import zoo_tau, zoo_tau_lines

    members = ["a.x", "b.y", "c.z"]
    acc = {"a.x": 0.55, "b.y": 0.7, "c.z": 0.4}
    rows = [{"target": "stripes-new-angles", "backbone": m, "ft_mean": acc[m], "fit_labels": acc[m],
             "fit_free": None, "logme": -acc[m], "knn": acc[m], "probe": acc[m], "gain": None,
             "early_shift": -acc[m]} for m in members]
    rows += [{**r, "target": "shapes-new", "fit_labels": -r["fit_labels"]} for r in rows[:2]]
    z = {"members": members, "targets": ["stripes-new-angles", "shapes-new"],
         "avail": {"stripes-new-angles": members, "shapes-new": ["a.x", "b.y"]},
         "prior": {"a.x": 70.0, "b.y": 75.0, "c.z": None}, "rows": rows}
    res = zoo_tau(z)
    assert res["proximity (labels)"]["tau"][0] == pytest.approx(1.0) and res["proximity (labels)"]["n_targets"] == 1
    assert res["proximity (labels)"]["regret_pts"] == pytest.approx(0.0)
    assert res["logme"]["tau"][0] == pytest.approx(-1.0) and res["logme"]["regret_pts"] == pytest.approx(30.0)
    assert res["early_shift"]["tau"][0] == pytest.approx(1.0)                       # lower = closer = better
    assert res["prior (ImageNet top-1; none = last)"]["tau"][0] == pytest.approx(1.0)   # b > a > c (unknown)
    assert "proximity (label-free)" not in res and "gain" not in res                  # no values: no ranker
    text = "\n".join(zoo_tau_lines(z))
    assert "| logme | -1.00 (-1.00, -1.00) | 30.0 pts | 1 | 3 |" in text
    rows[2]["early_shift"] = None                   # c.z without early_shift: two members scored, no τ
    assert "early_shift" not in zoo_tau(z)
    z["members"].append("d.w")
    z["avail"]["stripes-new-angles"] = z["members"]
    rows.append({**rows[0], "backbone": "d.w", "ft_mean": 0.1, "fit_labels": 0.1, "early_shift": -0.1})
    assert zoo_tau(z)["early_shift"]["members"] == 3 and zoo_tau(z)["logme"]["members"] == 4


def test_risk_ceiling_validation_split_half_is_split_half_on_the_validation_accuracies():
    """Where every run's validation accuracy equals its test accuracy, the validation split-half
    figure is the split-half one; turned round (validation = 1 − test) it is its mirror."""
    from scripts.bench import risk_ceiling

    rows = _seed_rows(np.random.default_rng(2), 120, gap=0.05, noise=0.1)
    val = {}
    for r in rows:
        val[("finetune", r["backbone"], r["target"])] = dict(zip((1, 2, 3, 4), r["ft"], strict=True))
        val[("scratch", r["arch"], r["target"])] = dict(zip((1, 2, 3, 4), r["sc"], strict=True))
    same = risk_ceiling.ceilings(rows, draws=5, val=val)["s"]
    assert same["validation_split_half_auroc"] == pytest.approx(same["split_half_auroc"])
    assert 0.55 < same["split_half_auroc"] < 0.95
    mirror = {k: {s: 1 - a for s, a in v.items()} for k, v in val.items()}
    assert risk_ceiling.ceilings(rows, draws=5, val=mirror)["s"]["validation_split_half_auroc"] == pytest.approx(
        1 - same["split_half_auroc"])


def test_plateau_ped_move_known_answers():
    """Potential-energy descent on hand-computed cases (scripts/bench/plateau.py)."""
    from scripts.bench.plateau import ped_move

    # two 1-D classes, unit-variance reference: A = {-1, 1} (mean 0, R 1), B = {1, 3} (mean 2, R 1)
    x = np.array([[-1.0], [1.0], [1.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    ref = (np.zeros(1), np.ones(1))
    # nσ 2, dt 1: overlap 2·(1 + 1) − 2 = 2, step min(½·2, 2) = 1: A moves −1, B +1; then no overlap
    np.testing.assert_allclose(ped_move(x, y, *ref, nsigma=2.0, dt=1.0), [[-2.0], [0.0], [2.0], [4.0]])
    # dt 0.1: each step moves each class by 0.005·F and shrinks F by 1 %: six steps (never below half)
    moved = 0.005 * 2.0 * sum(0.99 ** k for k in range(6))
    np.testing.assert_allclose(ped_move(x, y, *ref, nsigma=2.0, dt=0.1), x + np.array([[-moved]] * 2 + [[moved]] * 2))
    # classes further apart than nσ·(R_i + R_j) do not move; the input is not modified
    far = np.array([[-1.0], [1.0], [9.0], [11.0]])
    np.testing.assert_array_equal(ped_move(far, y, *ref, nsigma=2.0, dt=1.0), far)
    np.testing.assert_array_equal(x, [[-1.0], [1.0], [1.0], [3.0]])
    # standardised by the sample's own moments: the move scales with the features
    rng = np.random.default_rng(0)
    z = rng.normal(size=(30, 4))
    yz = np.repeat([0, 1, 2], 10)
    np.testing.assert_allclose(ped_move(5.0 * z, yz, nsigma=0.6), 5.0 * ped_move(z, yz, nsigma=0.6))


def test_zoo_finetune_at_64_changes_the_input_size_only(backbones):
    """scripts/bench/zoo_finetune.py trains at the ground truth's 64 px: the spec's size and crop
    change, nothing else, and the network really gets 64-px inputs."""
    from proximity.backbones import open_backbone, resolve_spec
    from proximity.catalog import adhoc_entry
    from scripts.bench.zoo_finetune import at_64

    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    spec = dataclasses.replace(spec, preprocess=dataclasses.replace(spec.preprocess, size=(96, 96), crop_pct=0.875),
                               data_config={**spec.data_config, "input_size": (3, 96, 96), "crop_pct": 0.875})
    small = at_64(spec)
    assert small.preprocess.size == (64, 64) and small.preprocess.crop_pct == 1.0
    assert small.data_config["input_size"] == (3, 64, 64) and small.data_config["crop_pct"] == 1.0
    assert (small.preprocess.mean, small.preprocess.std) == (spec.preprocess.mean, spec.preprocess.std)
    assert (small.create_name, small.revision, small.entry) == (spec.create_name, spec.revision, spec.entry)
    assert small.preprocess([np.zeros((80, 80, 3), np.float32)]).shape == (1, 3, 64, 64)
    assert open_backbone(small).model(small.preprocess([np.zeros((80, 80, 3), np.float32)])).ndim == 2


def test_metrics_constant_scores_order_nothing():
    """A ranker that scores every candidate the same gets τ 0 on that target (not NaN, which the
    bootstrap would drop from the mean while the target count still included it)."""
    from scripts.bench.evaluate import _boot, _metrics

    acc = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}
    tau, regret, _ = _metrics({m: 1.0 for m in acc}, acc)
    assert tau == 0.0 and np.isfinite(regret)
    perfect, _, _ = _metrics({m: v for m, v in acc.items()}, acc)
    assert perfect == pytest.approx(1.0)
    assert _boot([perfect, tau])[0] == pytest.approx(0.5)


def test_repeats_chooses_every_nth_target_of_each_split_and_reproduces_the_stored_selection():
    """scripts/bench/repeats.py: the targets are fixed by rule (not by their results), and the
    stored runs are the ones that rule chooses; the shipped risk it reads is the page's."""
    from scripts.bench.plateau import RESULTS, read_pairs
    from scripts.bench.repeats import _shipped_risk, chosen_targets

    split = {"a": "dev", "b": "dev", "c": "dev", "d": "test", "e": "test"}
    assert chosen_targets(split, 2) == ["a", "c", "d"]
    assert chosen_targets(split, 1) == sorted(split)
    rows, split = read_pairs()
    stored = json.loads((RESULTS / "repeats.json").read_text())
    assert sorted(stored["runs"]) == chosen_targets(split, stored["every"])
    assert stored["summary"]["pairs"] == sum(len(rows[t]) for t in stored["runs"])
    # (protocol 4 scored v4 with the shipped model: after a refit, repeats.py's shipped-risk figures are stale)
    row = next(r for t in sorted(rows) if split[t] == "test-v4" for r in rows[t].values())
    assert _shipped_risk(row, float(row["scratch"])) == pytest.approx(float(row["risk"]), abs=1e-9)


def test_labelfree_pseudo_scores_favour_features_that_hold_the_shared_clusters():
    """scripts/bench/labelfree_pseudo.py: two backbones whose features carry the same three clusters
    (different projections) score above one of pure noise on the signals that judge a backbone by
    clusters it did not choose — others' clusters, the consensus without itself, the pixels' — and
    on agreement. Its own clusters (``self``) lift even the noise above what others' give it, which
    is why ``cross`` exists."""
    from scripts.bench.labelfree_pseudo import NEW, pseudo_label_scores

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    centres = rng.normal(size=(3, 6)) * 4.0
    latent = centres[y] + rng.normal(size=(60, 6))
    feats = {"a": latent @ rng.normal(size=(6, 10)), "b": latent @ rng.normal(size=(6, 12)) + 1.0,
             "noise": rng.normal(size=(60, 10))}
    pixels = latent @ rng.normal(size=(6, 48))
    s = pseudo_label_scores(feats, pixels, ks=(2, 3))
    assert set(s) == set(NEW) and all(set(v) == set(feats) for v in s.values())
    for name in ("cross", "consensus, others", "pixels", "agreement"):
        assert min(s[name]["a"], s[name]["b"]) > s[name]["noise"], name
    assert s["self"]["noise"] > s["cross"]["noise"]
    assert "pixels" not in pseudo_label_scores(feats, None, ks=(2,))
    # k above n / 4 is dropped (60 images: k 16 would be; 2 stays)
    assert pseudo_label_scores(feats, None, ks=(2, 16))["self"] == pseudo_label_scores(feats, None, ks=(2,))["self"]
    # the label-free gate: backbones holding the same clusters agree; noise agrees with nothing
    from scripts.bench.labelfree_pseudo import _reduce, clustering_agreement

    z = {b: _reduce(x) for b, x in feats.items()}
    assert clustering_agreement({"a": z["a"], "b": z["b"]}) > 0.9
    assert clustering_agreement({"a": z["a"], "noise": z["noise"]}) < 0.2
