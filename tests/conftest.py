"""Test fixtures: a loopback fake Hugging Face Hub, temporary user folders, tiny trained backbones.

The fake Hub starts *at import*, before anything imports huggingface_hub (which reads
HF_ENDPOINT once): nothing here talks to the internet.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fakehub import FakeHub  # noqa: E402

_TMP = Path(tempfile.mkdtemp(prefix="proximity-tests-"))
HUB = FakeHub()
os.environ.update({
    "HF_ENDPOINT": HUB.start(),
    "HF_HOME": str(_TMP / "hf"),
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "PROXIMITY_CACHE_DIR": str(_TMP / "cache"),
    "PROXIMITY_DATA_DIR": str(_TMP / "data"),
    "TOKENIZERS_PARALLELISM": "false",
    # Rich reads the width from COLUMNS (else from the terminal the tests run in): pinned, so that no
    # test depends on the caller's terminal; tests of other widths pass env={"COLUMNS": …} to the runner
    "COLUMNS": "80",
})
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_TOKEN", None)

import synthetic as S  # noqa: E402

TARGET_ANGLES = (10, 25, 40, 55)          # new classes of the gratings domain
TARGET_NOISE = 1.5


def pytest_sessionfinish(session, exitstatus):
    HUB.stop()
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def hub() -> FakeHub:
    return HUB


@pytest.fixture(scope="session")
def backbones(tmp_path_factory) -> dict[str, Path]:
    """Two tiny BN backbones (timm test_resnet) trained for seconds: 'A' on gratings, 'B' on blobs."""
    root = tmp_path_factory.mktemp("backbones")
    rng = np.random.default_rng(0)
    ga, gl = S.gratings(100, [0, 45, 90, 135], rng)
    bi, bl = S.blobs(100, [1, 2, 4, 8], rng)
    model_a, _ = S.train_backbone(ga, gl, seed=0)
    model_b, _ = S.train_backbone(bi, bl, seed=0)
    return {"A": S.save_repo(model_a, root / "A"), "B": S.save_repo(model_b, root / "B")}


@pytest.fixture(scope="session")
def target_images():
    """A labelled target from the gratings domain with new classes (orientations never trained on)."""
    return S.gratings(20, TARGET_ANGLES, np.random.default_rng(1), noise=TARGET_NOISE)


@pytest.fixture(scope="session")
def target_dir(tmp_path_factory, target_images) -> Path:
    imgs, labels = target_images
    return S.write_folder(tmp_path_factory.mktemp("target") / "images", imgs, labels)


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI configures logging globally (a Rich handler on the root logger, writing to the stderr
    of the moment): put it back after each test, so that one test's CliRunner run does not make a
    later test's library log records (Pillow's TIFF errors in test_fuzz) appear on its stderr."""
    import logging

    root, ours = logging.getLogger(), logging.getLogger("proximity")
    handlers, levels = root.handlers[:], (root.level, ours.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    ours.setLevel(levels[1])


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """An empty evidence cache for this test only."""
    monkeypatch.setenv("PROXIMITY_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
