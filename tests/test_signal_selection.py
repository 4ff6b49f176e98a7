"""--signals: the core set by default, every signal on request, names added; through the API and the CLI."""

import json

import pytest
from typer.testing import CliRunner

import proximity
from proximity.cli import app
from proximity.config import RankConfig
from proximity.errors import InvalidParameterError
from proximity.ranking import load_rules
from proximity.scoring import SHOWN_SIGNALS, signal_names
from proximity.signals import SIGNALS


def test_core_holds_the_baselines_and_what_the_rules_and_the_risk_use():
    core = signal_names(RankConfig())
    assert set(SHOWN_SIGNALS) <= set(core) < set(SIGNALS)
    for rule in load_rules().values():
        assert rule.signals() <= set(core)
    assert "rankme_rel" in core                     # the shipped risk model's feature
    from proximity.cascade import SCREEN_SIGNALS

    assert set(SCREEN_SIGNALS) <= set(core)         # the cascade screen's own signals (probe_loo among them)
    assert RankConfig.build(signals="CORE, nleep").signals == ("nleep",)   # names are added to core
    assert RankConfig.build(signals="All").signals == "all"
    with pytest.raises(InvalidParameterError, match="'core', 'all' or signal names"):
        RankConfig.build(signals=" , ")
    assert signal_names(RankConfig(signals="all")) == list(SIGNALS)
    assert "nleep" in signal_names(RankConfig.build(signals="nleep, hscore"))
    with pytest.raises(InvalidParameterError, match="signals"):
        signal_names(RankConfig.build(signals="nleep,no_such_signal"))


def test_core_and_all_through_the_api_and_the_cli(target_dir, backbones, tmp_path, fresh_cache):
    model = f"local-dir:{backbones['A']}"
    core = proximity.rank(target_dir, models=[model], sample=24, folds=3)
    assert "nleep" not in core.ranking[0].signals and core.ranking[0].signals["probe"].value is not None
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["rank", str(target_dir), "--model", model, "--sample", "24", "--folds", "3",
                                   "--signals", "all", "--format", "json", "--output", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert set(d["ranking"][0]["signals"]) == set(SIGNALS) and d["settings"]["signals"] == "all"
    bad = CliRunner().invoke(app, ["rank", str(target_dir), "--model", model, "--signals", "nleep,bogus"])
    assert bad.exit_code == 2 and "bogus" in bad.output


def test_a_label_free_run_never_imports_scikit_learn(target_dir, backbones, tmp_path):
    """Label-using signals check for labels before importing scikit-learn (2.4 s of a label-free run)."""
    import subprocess
    import sys

    code = ("import sys, proximity; r = proximity.rank(sys.argv[1], models=[sys.argv[2]], labels='none', sample=16, "
            "use_cache=False); assert r.ranking[0].signals['early_shift'].value is not None; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
    out = subprocess.run([sys.executable, "-c", code, str(target_dir), f"local-dir:{backbones['A']}"],
                         capture_output=True, text=True, env={**__import__("os").environ,
                                                              "PROXIMITY_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
