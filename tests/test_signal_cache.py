"""Signal results cached with the evidence: a fully cached re-run computes no signal, runs no
forward pass and imports no torch; every ingredient of a result is in its key."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from proximity import signal_cache
from proximity.catalog import CatalogEntry
from proximity.config import RankConfig
from proximity.data import sample_from_arrays

ROOT = Path(__file__).resolve().parents[1]


def test_control_bn_constants_agree_with_the_backbones():
    from proximity.backbones import BN_REESTIMATE_BATCH, BN_REESTIMATE_IMAGES

    assert signal_cache.CONTROL_BN == (BN_REESTIMATE_IMAGES, BN_REESTIMATE_BATCH)


_CHILD = """
import json, sys, time
import proximity
r = proximity.rank(sys.argv[1], models=sys.argv[2:], sample=16, folds=3)
heavy = sorted(m for m in ("torch", "timm", "sklearn", "transformers") if m in sys.modules)
print(json.dumps({"heavy": heavy, "result": r.to_dict()}))
"""


def _child(target_dir, models, cache):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROXIMITY_CACHE_DIR": str(cache)}
    res = subprocess.run([sys.executable, "-c", _CHILD, str(target_dir), *models], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_fully_cached_rerun_imports_no_torch_and_gives_the_same_result(target_dir, backbones, tmp_path):
    models = [f"local-dir:{backbones['A']}", f"local-dir:{backbones['B']}"]
    first = _child(target_dir, models, tmp_path / "cache")
    again = _child(target_dir, models, tmp_path / "cache")
    assert "torch" in first["heavy"]
    assert again["heavy"] == []                    # no torch, timm, scikit-learn: no pass, no signal
    a, b = first["result"], again["result"]
    assert [c["cached"] for c in b["ranking"]] == [True, True] and not any(c["cached"] for c in a["ranking"])
    for c in (*a["ranking"], *b["ranking"]):
        c.pop("cached")
    assert a["ranking"] == b["ranking"] and a["settings"] == b["settings"] and a["fit_rule"] == b["fit_rule"]


def _sample(labels=True, n=12, seed=0):
    rng = np.random.default_rng(seed)
    imgs = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(n)]
    return sample_from_arrays(imgs, [f"c{i % 3}" for i in range(n)] if labels else None)


def test_every_ingredient_changes_the_key(monkeypatch):
    entry = CatalogEntry(id="m", source="timm:resnet18.a1_in1k", imagenet_top1=70.0)
    ident = signal_cache.candidate_identity(entry)
    smp, cfg = _sample(), RankConfig()
    base = signal_cache.signal_key(ident, entry, smp, cfg, labels_off=False)
    relabelled = dataclasses.replace(smp, labels=smp.labels[::-1].copy())
    facts = dataclasses.replace(entry, imagenet_top1=71.0)
    variants = [
        signal_cache.signal_key(ident, entry, relabelled, cfg, labels_off=False),           # other labels
        signal_cache.signal_key(ident, entry, _sample(seed=1), cfg, labels_off=False),      # other pixels
        signal_cache.signal_key(ident, entry, smp, cfg.with_(folds=3), labels_off=False),
        signal_cache.signal_key(ident, entry, smp, cfg.with_(seed=1), labels_off=False),
        signal_cache.signal_key(ident, entry, smp, cfg.with_(control=False), labels_off=False),
        signal_cache.signal_key(ident, entry, smp, cfg, labels_off=True),
        signal_cache.signal_key(signal_cache.candidate_identity(facts), facts, smp, cfg, labels_off=False),
    ]
    from proximity.signals import SIGNALS

    monkeypatch.setitem(SIGNALS, "probe", dataclasses.replace(SIGNALS["probe"], version=99))
    variants.append(signal_cache.signal_key(ident, entry, smp, cfg, labels_off=False))     # a signal's version
    monkeypatch.undo()
    assert signal_cache.signal_key(ident, entry, smp, cfg, labels_off=False) == base
    # options that change no signal keep the key: the device, the batch size, the shortlist
    assert signal_cache.signal_key(ident, entry, smp, cfg.with_(batch_size=7, device="cpu", shortlist=None),
                                   labels_off=False) == base
    assert len({base, *variants}) == len(variants) + 1


def test_identity_of_a_local_folder_follows_its_content(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"a")
    entry = CatalogEntry(id="x", source=f"local-dir:{tmp_path}")
    one = signal_cache.candidate_identity(entry)
    (tmp_path / "model.safetensors").write_bytes(b"b")
    assert signal_cache.candidate_identity(entry) != one
    assert signal_cache.candidate_identity(CatalogEntry(id="h", source="hf-hub:org/name")) is None   # unpinned
    pinned = CatalogEntry(id="h", source="hf-hub:org/name", revision="a" * 40)
    assert signal_cache.candidate_identity(pinned)["commit"] == "a" * 40


def test_a_reference_file_is_part_of_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("PROXIMITY_DATA_DIR", str(tmp_path))
    entry = CatalogEntry(id="m", source="timm:resnet18.a1_in1k")
    before = signal_cache.reference_state(entry)
    ref = tmp_path / "reference" / "resnet18.a1_in1k--0123456789abcdef.npz"
    ref.parent.mkdir(parents=True)
    ref.write_bytes(b"stats")
    after = signal_cache.reference_state(entry)
    assert after != before and (str(ref), signal_cache.hashlib.sha256(b"stats").hexdigest()) in after


def test_no_record_without_the_cache_or_after_a_failed_control(target_dir, backbones, fresh_cache, monkeypatch):
    import proximity
    from proximity import controls

    model = [f"local-dir:{backbones['A']}"]
    proximity.rank(target_dir, models=model, sample=16, folds=3, use_cache=False)
    assert not fresh_cache.exists() or not list(fresh_cache.rglob("*.npz"))

    def broken(self, *a, **k):
        raise RuntimeError("no memory for the control")

    monkeypatch.setattr(controls.ControlPool, "get", broken)
    r = proximity.rank(target_dir, models=model, sample=16, folds=3)
    assert "no memory for the control" in r[0].signals["gain"].reason
    monkeypatch.undo()
    again = proximity.rank(target_dir, models=model, sample=16, folds=3)
    assert not again[0].cached and again[0].signals["gain"].value is not None     # recomputed, not the failure
    third = proximity.rank(target_dir, models=model, sample=16, folds=3)
    assert third[0].cached and third[0].signals["gain"] == again[0].signals["gain"]
