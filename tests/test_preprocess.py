import json
import numpy as np
import pytest
import torch

from proximity.errors import ChannelMismatchError
from proximity.preprocess import Preprocess

CFG = {"input_size": (3, 32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "crop_pct": 1.0,
       "interpolation": "bilinear"}


def test_grey_to_rgb_resize_and_normalise():
    p = Preprocess.from_data_config(CFG)
    x = p([np.full((64, 128), 0.75, np.float32)])
    assert x.shape == (1, 3, 32, 32)
    torch.testing.assert_close(x, torch.ones_like(x))            # (0.75 - 0.5) / 0.25


def test_alpha_dropped_and_rgb_to_grey():
    rgba = np.zeros((16, 16, 4), np.float32)
    rgba[..., 0] = 1.0
    rgba[..., 3] = 0.3
    x = Preprocess.from_data_config({**CFG, "input_size": (1, 16, 16), "mean": 0.0, "std": 1.0})([rgba])
    torch.testing.assert_close(x, torch.full((1, 1, 16, 16), 0.299))


def test_centre_crop_with_crop_pct():
    img = np.zeros((100, 100), np.float32)
    img[:, :50] = 1.0
    p = Preprocess.from_data_config({**CFG, "input_size": (3, 20, 20), "crop_pct": 0.5, "mean": 0.0, "std": 1.0})
    x = p([img])[0, 0]
    # resized to 40 px then cropped to the central 20: left half 1, right half 0
    assert x[:, :9].min() > 0.99 and x[:, 11:].max() < 0.01


def test_channel_mismatch_is_an_error_that_names_the_numbers():
    with pytest.raises(ChannelMismatchError, match="expects 3-channel input but the images have 6"):
        Preprocess.from_data_config(CFG)([np.zeros((8, 8, 6), np.float32)])


def test_describe_names_every_ingredient_of_the_preprocessing():
    """Equal configurations describe alike; changing any ingredient changes the description (it
    keys the evidence cache, so a change must never reuse another preprocessing's evidence)."""
    base = Preprocess.from_data_config(CFG).describe()
    assert Preprocess.from_data_config(json.loads(json.dumps(CFG))).describe() == base
    for key, value in (("input_size", (3, 24, 24)), ("mean", (0.1, 0.2, 0.3)), ("std", (0.9, 0.9, 0.9)),
                       ("interpolation", "nearest"), ("crop_pct", 0.5)):
        assert Preprocess.from_data_config({**CFG, key: value}).describe() != base, key


def test_matching_channel_counts_pass_unchanged():
    four = np.random.default_rng(0).random((8, 8, 4)).astype(np.float32)
    x = Preprocess.from_data_config({**CFG, "input_size": (4, 8, 8), "mean": 0.0, "std": 1.0})([four])
    torch.testing.assert_close(x[0], torch.from_numpy(four).permute(2, 0, 1))


@pytest.mark.parametrize("name", ["lanczos", "box", "hamming"])
@pytest.mark.parametrize("shape, size", [((57, 83), (31, 40)), ((20, 30), (45, 61)), ((100, 37), (224, 224))])
def test_pil_filters_match_pillow(name, shape, size):
    """lanczos, box and hamming are Pillow's own resampling (its float 'F' images: no 8-bit rounding),
    down- and upsampling, to float32 round-off."""
    from PIL import Image

    from proximity.preprocess import resample

    img = np.random.default_rng(0).random(shape).astype(np.float32)
    filt = {"lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}[name]
    expected = np.asarray(Image.fromarray(img).resize(size[::-1], filt))
    got = resample(torch.from_numpy(img)[None], size, name)[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_lanczos_is_used_not_replaced_and_an_unknown_interpolation_is_refused():
    from proximity.errors import UnsupportedModelError

    img = np.random.default_rng(1).random((50, 70)).astype(np.float32)
    out = {m: Preprocess.from_data_config({**CFG, "interpolation": m})([img])
           for m in ("lanczos", "bilinear", "bicubic")}
    assert Preprocess.from_data_config({**CFG, "interpolation": "lanczos"}).interpolation == "lanczos"
    assert not torch.allclose(out["lanczos"], out["bilinear"]) and not torch.allclose(out["lanczos"], out["bicubic"])
    with pytest.raises(UnsupportedModelError, match="interpolation 'random' is not one proximity implements"):
        Preprocess.from_data_config({**CFG, "interpolation": "random"})


@pytest.mark.parametrize("code, name", [(0, "nearest"), (1, "lanczos"), (2, "bilinear"), (3, "bicubic"), (4, "box"),
                                        (5, "hamming"), (None, "bilinear")])
def test_an_image_processor_resample_code_is_read_by_name(code, name):
    from types import SimpleNamespace

    from proximity.backbones.format_transformers import _interpolation
    from proximity.catalog import CatalogEntry

    assert _interpolation(CatalogEntry(id="x", source="hf-hub:o/x"), SimpleNamespace(resample=code)) == name


def test_an_unknown_resample_code_is_refused():
    from types import SimpleNamespace

    from proximity.backbones.format_transformers import _interpolation
    from proximity.catalog import CatalogEntry
    from proximity.errors import UnsupportedModelError

    with pytest.raises(UnsupportedModelError, match="PIL filter 9"):
        _interpolation(CatalogEntry(id="x", source="hf-hub:o/x"), SimpleNamespace(resample=9))
