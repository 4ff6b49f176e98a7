"""Protocol 3's fresh test targets: twelve new 64 px labelled tasks, all *test*, defined and
committed before any of them was trained on or scored.

Why: protocol 2's fourteen test targets have been read at v2.0, v2.2, v2.3, v2.4 and v2.5 (each
reading after a change chosen on dev, each a declared protocol version). Every rule shipped now
was chosen without them, but a sixth reading of the same targets is no longer the blind check it
was at the first. Protocol 3 keeps everything of protocol 2 — the backbones
(``DATA/bench/v2/backbones``), the fine-tuning recipe and its seeds 1–4 at the best learning rate
(``finetune.py --protocol 3``), the scoring and the page — and adds these twelve targets as a
second test set, read once with the rules exactly as shipped when the set was defined
(``results/v3/split.json`` records their digests).

The groups mirror protocol 2's: three *near* a source domain (new classes of its world), three
*shifted* (a source domain under a contrast, noise or scale shift), three *small* (8 images per
class for the user) and three near *no* source domain (a CT phantom, spectrograms, signal plots).
One is not independent of dev, found by review after its ground truth had started and declared
before reading (``split.json`` "overlap"): ``fashion-upper-body`` takes four of the five
Fashion-MNIST classes of the dev targets fashion-5-small and fashion-small, unshifted, from the
same images; the reading gives the fresh set with and without it.
"""

from __future__ import annotations


import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from . import domains as D
from . import targets as T
from .targets_v2 import TargetV2, _zoom_levels, make_from

SIZE = D.SIZE


def _stripes_frequencies(n, rng):
    """Classes = spatial frequency of the grating (the source's nuisance), at any angle."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    freqs = (0.04, 0.08, 0.16)
    out, lab = [], []
    for c, f in enumerate(freqs):
        for _ in range(n):
            t = rng.uniform(0, np.pi)
            g = np.sin(2 * np.pi * f * rng.uniform(0.9, 1.1) * (xx * np.cos(t) + yy * np.sin(t)) + rng.uniform(0, 6.3))
            g = np.clip((g + 0.5 * rng.normal(size=g.shape) + 1.5) / 3.0, 0, 1)
            out.append(D._to_uint8(D._colourise(g, rng)))
            lab.append(c)
    return out, lab, [f"f{f:g}" for f in freqs]


def _glyph_classes(chars: str, size=(26, 44), blur: float = 0.0):
    def build(n, rng):
        out = []
        for ch in chars:
            for _ in range(n):
                img = D.glyph(ch, rng, size)
                if blur:
                    img = D._to_uint8(gaussian_filter(img / 255.0, (blur, blur, 0)))
                out.append(img)
        return out, [c for c in range(len(chars)) for _ in range(n)], list(chars)
    return build


def _cells_brightfield(n, rng):
    """The cells source's four layouts, inverted: dark nuclei on a bright field."""
    names = ["sparse", "dense", "clustered", "elongated"]
    out = [255 - D.cells_layout(k, rng) for k in names for _ in range(n)]
    return out, [c for c in range(4) for _ in range(n)], names


def _shapes_noisy(n, rng):
    """The shapes source's four classes under heavy noise and blur."""
    imgs, labels, names = D.shapes(n, rng)
    out = []
    for img in imgs:
        x = gaussian_filter(img / 255.0, (1.0, 1.0, 0)) + rng.normal(0, 0.14, img.shape)
        out.append(D._to_uint8(np.clip(x, 0, 1)))
    return out, labels, names


def _stripes_small(n, rng):
    return T._stripes_at((30, 75, 120, 165))(n, rng)


def _binary_blobs(n, rng):
    """Binary two-phase micrographs (scikit-image's binary_blobs): classes = grain size."""
    from skimage.data import binary_blobs

    fracs = (0.08, 0.12, 0.18)
    out, lab = [], []
    for c, f in enumerate(fracs):
        for _ in range(n):
            b = binary_blobs(length=128, blob_size_fraction=f * rng.uniform(0.85, 1.15),
                             volume_fraction=rng.uniform(0.35, 0.65), rng=int(rng.integers(2 ** 31)))
            g = np.asarray(Image.fromarray(np.uint8(b) * 255).resize((SIZE, SIZE), Image.Resampling.BILINEAR)) / 255.0
            g = np.clip(0.15 + 0.7 * g + 0.06 * rng.normal(size=g.shape), 0, 1)
            out.append(np.repeat(D._to_uint8(g)[..., None], 3, 2))
            lab.append(c)
    return out, lab, [f"grain{f:g}" for f in fracs]


def _moon():
    from skimage import data

    return data.moon()


def _phantom_lesion(n, rng):
    """CT-like crops of the Shepp–Logan phantom with quantum-like noise: with or without one small
    extra ellipse (a lesion, brighter or darker than its surroundings)."""
    from skimage.data import shepp_logan_phantom

    ph = shepp_logan_phantom()                      # 400 × 400, values in [0, 1]
    out, lab = [], []
    for c in (0, 1):
        for _ in range(n):
            s = int(rng.integers(140, 260))
            y, x = int(rng.integers(40, 400 - s - 40 + 1)), int(rng.integers(40, 400 - s - 40 + 1))
            g = np.asarray(Image.fromarray(ph[y:y + s, x:x + s].astype(np.float32)).resize(
                (SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float64)
            if c == 1:
                yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
                cy, cx = rng.uniform(14, SIZE - 14, 2)
                a, b, t = rng.uniform(3.5, 6.0), rng.uniform(2.5, 4.5), rng.uniform(0, np.pi)
                u, v = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t), -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
                g = g + rng.choice((-1, 1)) * rng.uniform(0.12, 0.3) * ((u / a) ** 2 + (v / b) ** 2 <= 1)
            g = gaussian_filter(g, 0.7) + rng.normal(0, 0.05, g.shape)
            out.append(np.repeat(D._to_uint8(np.clip(g, 0, 1))[..., None], 3, 2))
            lab.append(c)
    return out, lab, ["clear", "lesion"]


def _spectrograms(n, rng):
    """Time–frequency images of four kinds of sound (time → x, frequency ↑ y), log-power-like,
    in a perceptual colour map: a steady tone with harmonics, a chirp, a click train, a noise band."""
    from matplotlib import colormaps

    cmap = colormaps["magma"]
    tt, ff = np.meshgrid(np.arange(SIZE, dtype=np.float64), np.arange(SIZE, dtype=np.float64)[::-1])
    names = ["tone", "chirp", "clicks", "band"]
    out, lab = [], []
    for c, kind in enumerate(names):
        for _ in range(n):
            g = rng.uniform(0.3, 0.6) * rng.random((SIZE, SIZE)) ** 2
            w, amp = rng.uniform(0.8, 1.6), rng.uniform(0.25, 0.8)
            if kind == "tone":
                f0 = rng.uniform(5, 20)
                for k in range(1, 4):
                    g += amp * np.exp(-((ff - k * f0 - rng.normal(0, 0.6, SIZE)) / w) ** 2) / k
            elif kind == "chirp":
                f0, slope = rng.uniform(4, 20), rng.uniform(0.08, 0.6) * rng.choice((-1, 1))
                f0 = f0 if slope > 0 else f0 + 35
                g += amp * np.exp(-((ff - (f0 + slope * tt)) / w) ** 2)
            elif kind == "clicks":
                period, ph = rng.uniform(7, 14), rng.uniform(0, 14)
                g += amp * np.exp(-(((tt - ph) % period) / w) ** 2) * np.exp(-ff / rng.uniform(25, 60))
            else:
                lo = rng.uniform(5, 40)
                g += amp * rng.random((SIZE, SIZE)) * ((ff > lo) & (ff < lo + rng.uniform(8, 18)))
            g = np.log1p(6 * gaussian_filter(g, 0.6)) / np.log1p(6 * 1.8)
            out.append(D._to_uint8(cmap(np.clip(g, 0, 1))[..., :3]))
            lab.append(c)
    return out, lab, names


def _signal_plots(n, rng):
    """Line plots of four kinds of signal, as a report or a dashboard shows them (axes, a light
    grid): sine, sawtooth, square wave, random walk."""
    names = ["sine", "sawtooth", "square", "random-walk"]
    out, lab = [], []
    for c, kind in enumerate(names):
        for _ in range(n):
            im = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in rng.integers(225, 256, 3)))
            d = ImageDraw.Draw(im)
            for k in range(8, SIZE, int(rng.integers(10, 17))):
                d.line([(k, 4), (k, SIZE - 6)], fill=(215, 215, 215))
            d.line([(6, SIZE - 6), (SIZE - 2, SIZE - 6)], fill=(60, 60, 60))
            d.line([(6, 2), (6, SIZE - 6)], fill=(60, 60, 60))
            x = np.linspace(0, rng.uniform(2, 5) * 2 * np.pi, 58) + rng.uniform(0, 6.3)
            if kind == "sine":
                y = np.sin(x)
            elif kind == "sawtooth":
                y = 2 * ((x / (2 * np.pi)) % 1) - 1
            elif kind == "square":
                y = np.sign(np.sin(x))
            else:
                y = np.cumsum(rng.normal(size=x.size))
                y = 2 * (y - y.min()) / (np.ptp(y) + 1e-8) - 1
            y = y + rng.normal(0, rng.uniform(0.05, 0.35), y.size)
            px = np.linspace(8, SIZE - 3, y.size)
            py = (SIZE - 6) / 2 - y * rng.uniform(14, 24)
            colour = tuple(int(v) for v in rng.integers(0, 160, 3))
            d.line(list(zip(px.tolist(), py.tolist(), strict=True)), fill=colour, width=1)
            out.append(np.asarray(im))
            lab.append(c)
    return out, lab, names


# (name, group, relation, n_per_class, build); every one is a test target.
NEW = (
    ("stripes-frequencies", "near", "near stripes (frequency classes, any angle)", 40, _stripes_frequencies),
    ("glyphs-digits", "near", "near glyphs (digits in the glyphs' font)", 40, _glyph_classes("23578", (14, 30))),
    ("fashion-upper-body", "near", "near fashion (t-shirt, pullover, coat, shirt: the hard four)", 40,
     T._fashion_subset((0, 2, 4, 6))),
    ("cells-brightfield", "shifted", "contrast shift of cells (inverted: dark nuclei, bright field)", 40,
     _cells_brightfield),
    ("shapes-noisy", "shifted", "noise and blur shift of shapes", 40, _shapes_noisy),
    ("glyphs-small-blurred", "shifted", "scale and blur shift of glyphs (the source letters, 12-18 px, blurred)",
     40, _glyph_classes("AKOSTX", (12, 18), 1.0)),
    ("stripes-small", "small", "near stripes (new angles), 8 per class", 8, _stripes_small),
    ("binary-blobs-small", "small", "shifted blobs (binary two-phase micrographs, grain size), 8 per class", 8,
     _binary_blobs),
    ("moon-zoom-small", "small", "near none (lunar surface, magnification classes), 8 per class", 8,
     _zoom_levels(_moon, (40, 110, 280))),
    ("phantom-lesion", "none", "near none (CT phantom crops: lesion or not)", 40, _phantom_lesion),
    ("spectrograms", "none", "near none (spectrograms of four kinds of sound)", 40, _spectrograms),
    ("signal-plots", "none", "near none (line plots of four kinds of signal)", 40, _signal_plots),
)

TARGETS = tuple(TargetV2(name, "test", group, rel, n, build) for name, group, rel, n, build in NEW)
FLIP_UNSAFE = ("stripes", "glyphs", "signal-plots", "spectrograms")   # a mirror image changes the class


def flip_ok(name: str) -> bool:
    """Whether a horizontal flip keeps the class (not for orientations, characters, time axes)."""
    return not name.startswith(FLIP_UNSAFE)


def make_target(name: str, seed: int = 0, n_per_class: int | None = None, n_test: int | None = None):
    """As :func:`targets_v2.make_target`, for the protocol-3 targets (their own seed stream, "v3")."""
    return make_from(TARGETS, "v3", name, seed, n_per_class, n_test)
