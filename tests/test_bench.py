"""The benchmark's building blocks (scripts/bench), in their quick mode."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench"
sys.path.insert(0, str(BENCH))

import domains  # noqa: E402
import pretrain  # noqa: E402


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
