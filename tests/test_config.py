"""RankConfig: one validated object behind the CLI, the API and the result's settings."""

import pytest
from typer.testing import CliRunner

from proximity.cli import app
from proximity.config import AUTO_SHORTLIST, AUTO_SHORTLIST_ABOVE, CONSTRAINTS, RankConfig
from proximity.errors import InvalidParameterError

BAD = {"batch_size": 0, "precision": "half",
       "folds": 1, "sample": 0, "seed": -1, "device": "tpu", "intensity": "log", "control": "yes",
       "control_images": 4, "signals": "some",
       "use_cache": 1, "scratch": "yes", "finetune": "yes", "repeats": 0,
       "include_gated": None, "max_params": -3.0, "shortlist": 0, "executor": "dask", "address": ""}


@pytest.mark.parametrize("name", list(CONSTRAINTS))
def test_every_declared_constraint_is_enforced_with_one_message_format(name):
    with pytest.raises(InvalidParameterError) as info:
        RankConfig(**{name: BAD[name]})
    err = info.value
    assert err.param == name and err.func == "rank"
    assert str(err) == f"The '{name}' parameter of rank must be {CONSTRAINTS[name][1]}. Got {BAD[name]!r} instead."


def test_defaults_are_valid_and_build_takes_the_api_forms():
    cfg = RankConfig.build(models=None, catalog="zoo", domain="medical", license=["mit"], labels=None or "none")
    assert cfg.catalog == ("zoo",) and cfg.domain == ("medical",) and cfg.license == ("mit",) and cfg.models == ()
    with pytest.raises(TypeError, match="unknown rank option"):
        RankConfig.build(batchsize=3)
    with pytest.raises(InvalidParameterError, match="'address' parameter"):
        RankConfig(address="ray://x:10001")           # only with the Ray executor
    assert RankConfig(executor="ray", address="auto").address == "auto"


def test_shortlist_rules():
    many = AUTO_SHORTLIST_ABOVE + 1
    assert RankConfig().shortlist_for(many) == AUTO_SHORTLIST
    assert RankConfig().shortlist_for(AUTO_SHORTLIST_ABOVE) is None              # small catalogs: all evaluated
    assert RankConfig(models=("timm:x",)).shortlist_for(many) is None            # --model lists: off unless given
    assert RankConfig(models=("timm:x",) * 3, shortlist=2).shortlist_for(3) == 2
    assert RankConfig(shortlist=5).shortlist_for(5) is None                      # nothing to leave out
    assert RankConfig(shortlist=None).shortlist_for(many) is None


def test_settings_carry_every_option_that_shapes_the_result():
    s = RankConfig(catalog=("zoo", "default"), seed=3).settings(device="cpu", controls=2, shortlist=None)
    assert s["catalog"] == ["zoo", "default"] and s["seed"] == 3 and s["device"] == "cpu" and s["control"] is True
    assert s["shortlist"] is None and s["executor"] == "serial"
    assert RankConfig(models=("timm:x",)).settings(device="cpu", controls=0, shortlist=None)["catalog"] is None


def test_api_refuses_a_config_with_other_options(target_dir):
    import proximity

    with pytest.raises(InvalidParameterError, match="'config' parameter of rank"):
        proximity.rank(target_dir, folds=3, config=RankConfig())


def test_ray_not_installed_is_said_before_decoding(monkeypatch, tmp_path):
    import importlib.util

    import proximity

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(InvalidParameterError, match=r"Ray is not installed \(pip install 'proximity\[ray\]'\)"):
        proximity.rank(tmp_path / "no-images-here", models=["timm:x"], executor="ray")


def test_cli_refuses_conflicting_scale_flags(target_dir):
    res = CliRunner().invoke(app, ["rank", str(target_dir), "--model", "timm:x", "--address", "auto"])
    assert res.exit_code == 2 and "--executor ray" in res.output
    res = CliRunner().invoke(app, ["rank", str(target_dir), "--model", "timm:x", "--shortlist", "-1"])
    assert res.exit_code == 2


def test_the_readme_config_example_runs_as_written(backbones, target_images, tmp_path, monkeypatch, capsys,
                                                   fresh_cache):
    """The README's RankConfig example, on a stand-in zoo of the two test backbones (as test_packaging does)."""
    import re
    from pathlib import Path

    from conftest import S

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "RankConfig(" in b]
    imgs, labels = target_images
    S.write_folder(tmp_path / "samples" / "digits", imgs, labels)
    zoo = tmp_path / "data" / "zoo" / "catalog"
    zoo.mkdir(parents=True)
    for name, key in (("gratings_net", "A"), ("blobs_net", "B")):
        (zoo / f"{name}.toml").write_text(f'source = "local-dir:{backbones[key]}"\n')
    monkeypatch.setenv("PROXIMITY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip() == "None []"
