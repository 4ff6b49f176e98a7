"""Protocol 2 target tasks: 28 labelled 64 px RGB tasks, split into dev and test *before* any
signal was scored (the split is fixed here and in ``results/v2/split.json``, committed first).

Each target is what a user holds — ``n_per_class`` labelled images per class, the sample every
ranker sees — plus a separate held-out test set of ``n_test`` images per class, drawn from the
same stream, used only to measure the fine-tuned accuracy (so a small-n target is small for the
user and the ranker, not for the measurement).

Groups (``group``; ``relation`` says to what in words):

* ``near`` — new classes from a source domain's world;
* ``shifted`` — a source domain under a contrast, colour, scale or resolution shift;
* ``none`` — near no source domain (real textures, microscopy, fundus, faces, sky survey,
  handwriting);
* ``small`` — ≤ 10 images per class for the user (near a source or near none).

The twelve protocol-1 targets keep their protocol-1 split (it was fixed before protocol 1 was
scored); the sixteen new ones were assigned by :func:`assign_new` — a seeded permutation
within each group, half dev, half test — and the result is written out in the tuple below.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from . import domains as D
from . import targets as T

N_TEST = 50            # held-out test images per class (fewer where the data has fewer)


@dataclass(frozen=True)
class TargetV2:
    name: str
    split: str            # "dev" | "test"
    group: str            # "near" | "shifted" | "none" | "small"
    relation: str
    n_per_class: int      # what the user holds (train + val for fine-tuning; the ranker's sample)
    build: Callable[[int, np.random.Generator], tuple[list, list, list]]
    n_test: int = N_TEST

    @property
    def flip_ok(self) -> bool:
        """Whether a horizontal flip keeps the class (not for orientations, letters, digits)."""
        return not self.name.startswith(("stripes", "glyphs", "documents", "digits"))


def _crops(images: dict[str, np.ndarray], lo: int, hi_frac: float, grey: bool = False):
    """Random square crops (side in [lo, hi_frac·min(h, w)]) of each named image → 64 px."""
    def build(n, rng):
        out, lab = [], []
        for c, img in enumerate(images.values()):
            h, w = img.shape[:2]
            for _ in range(n):
                s = int(rng.integers(lo, max(lo + 1, int(min(h, w) * hi_frac))))
                y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
                crop = np.asarray(Image.fromarray(img[y:y + s, x:x + s]).resize((D.SIZE, D.SIZE),
                                                                                Image.Resampling.BILINEAR))
                out.append(np.repeat(crop[..., None], 3, 2) if crop.ndim == 2 else crop[..., :3])
                lab.append(c)
        return out, lab, list(images)
    return build


def _zoom_levels(load: Callable[[], np.ndarray], sides=(48, 128, 320)):
    """Classes = magnification: crops of one large image at three sizes (a microscopy /
    remote-sensing style task with no object classes)."""
    def build(n, rng):
        img = load()
        img = img if img.ndim == 3 else np.repeat(img[..., None], 3, 2)
        h, w = img.shape[:2]
        out, lab = [], []
        for c, side in enumerate(sides):
            for _ in range(n):
                s = int(side * rng.uniform(0.85, 1.15))
                y, x = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
                out.append(np.asarray(Image.fromarray(img[y:y + s, x:x + s, :3]).resize((D.SIZE, D.SIZE),
                                                                                        Image.Resampling.BILINEAR)))
                lab.append(c)
        return out, lab, [f"side{s}" for s in sides]
    return build


def _cells_counts(n, rng):
    names, counts = ["few", "some", "many"], ((3, 5), (10, 14), (28, 36))
    out = [D.cells_layout("sparse", rng, int(rng.integers(*k))) for k in counts for _ in range(n)]
    return out, [c for c in range(3) for _ in range(n)], names


def _cells_small(n, rng):
    names = ["round", "elongated", "clustered"]
    out = [D.cells_layout({"round": "sparse"}.get(k, k), rng, int(rng.integers(10, 16))) for k in names
           for _ in range(n)]
    return out, [c for c in range(3) for _ in range(n)], names


def _lattice_periods(n, rng):
    names, periods = ["fine", "medium", "coarse"], (5.0, 9.0, 15.0)
    out = [D.lattice_pattern(str(rng.choice(["dots", "grid"])), rng, p * rng.uniform(0.9, 1.1)) for p in periods
           for _ in range(n)]
    return out, [c for c in range(3) for _ in range(n)], names


def _lattice_small(n, rng):
    names = ["dots", "hex", "checker", "grid"]
    out = []
    for k in names:
        for _ in range(n):
            img = D.lattice_pattern(k, rng, rng.uniform(10, 18))
            out.append(255 - img)                      # inverted: a contrast shift too
    return out, [c for c in range(4) for _ in range(n)], names


def _letters(chars, size=(26, 44)):
    def build(n, rng):
        out = [D.glyph(ch, rng, size) for ch in chars for _ in range(n)]
        return out, [c for c in range(len(chars)) for _ in range(n)], list(chars)
    return build


def _documents(n, rng):
    """Text lines vs words vs numbers on a page: three kinds of document crops."""
    kinds = {"line": lambda r: " ".join("".join(r.choice(list("aeinorst"), int(r.integers(2, 6)))) for _ in range(3)),
             "word": lambda r: "".join(r.choice(list("ABCDEFGHKLMNPRSTUVW"), int(r.integers(3, 5)))),
             "number": lambda r: f"{int(r.integers(100, 99999)):,}"}
    out, lab = [], []
    for c, make in enumerate(kinds.values()):
        for _ in range(n):
            out.append(D.glyph(make(rng), rng, (9, 15)))
            lab.append(c)
    return out, lab, list(kinds)


def _blobs_grey_inverted(n, rng):
    imgs, labels, names = T._blob_scales((1.5, 3, 6))(n, rng)
    return [255 - np.repeat(np.asarray(Image.fromarray(i).convert("L"))[..., None], 3, 2) for i in imgs], labels, names


def _lowres(build, side=16):
    def wrapped(n, rng):
        imgs, labels, names = build(n, rng)
        small = [np.asarray(Image.fromarray(i).resize((side, side), Image.Resampling.BILINEAR)
                            .resize((D.SIZE, D.SIZE), Image.Resampling.NEAREST)) for i in imgs]
        return small, labels, names
    return wrapped


def _fashion_rotated(n, rng):
    imgs, labels, names = T._fashion_subset((1, 3, 5, 7, 9))(n, rng)
    out = []
    for i in imgs:
        im = Image.fromarray(i).rotate(90 + rng.normal(0, 10), resample=Image.Resampling.BILINEAR)
        s = int(D.SIZE * rng.uniform(0.55, 0.7))
        canvas = Image.new("RGB", (D.SIZE, D.SIZE))
        canvas.paste(im.resize((s, s)), tuple(int(v) for v in rng.integers(0, D.SIZE - s, 2)))
        out.append(np.asarray(canvas))
    return out, labels, names


def _faces(n, rng):
    from skimage import data

    faces = data.lfw_subset()                      # 100 faces, then 100 non-faces, 25 × 25 grey
    out, lab = [], []
    for c, idx in enumerate((np.arange(100), np.arange(100, 200))):
        for i in rng.permutation(idx)[:n]:
            g = np.asarray(Image.fromarray(np.uint8(np.clip(faces[i], 0, 1) * 255)).resize((D.SIZE, D.SIZE),
                                                                                           Image.Resampling.BICUBIC))
            out.append(np.repeat(g[..., None], 3, 2))
            lab.append(c)
    return out, lab, ["face", "not-face"]


def _photos_lowres(n, rng):
    return _lowres(D.photos, 12)(n, rng)


def _skimage(name):
    def load():
        from skimage import data
        return getattr(data, name)()
    return load


def _textures(n, rng):
    return T._textures(n, rng)


OLD = {t.name: t for t in T.TARGETS}


def _old(name: str, group: str, n_per_class: int | None = None) -> TargetV2:
    t = OLD[name]
    return TargetV2(name, t.split, group, t.relation, n_per_class or t.n_per_class, t.build)


# The 16 new targets before assignment: (name, group, relation, n_per_class, build).
NEW = (
    ("lattice-periods", "near", "near lattice (period classes)", 40, _lattice_periods),
    ("cells-counts", "near", "near cells (count classes)", 40, _cells_counts),
    ("glyphs-new-letters", "near", "near glyphs (new letters)", 40, _letters("HMVWZ")),
    ("documents", "near", "near glyphs (document crops: lines, words, numbers)", 40, _documents),
    ("blobs-grey-inverted", "shifted", "colour and contrast shift of blobs", 40, _blobs_grey_inverted),
    ("photos-lowres", "shifted", "resolution shift of photos (12 px)", 40, _photos_lowres),
    ("fashion-rotated-small-scale", "shifted", "rotation and scale shift of fashion", 40, _fashion_rotated),
    ("stripes-lowres", "shifted", "resolution shift of stripes (16 px)", 40,
     _lowres(T._stripes_at((22.5, 67.5, 112.5, 157.5)))),
    ("shapes-small", "small", "near shapes, 8 per class", 8, T._new_shapes),
    ("fashion-small", "small", "near fashion, 8 per class", 8, T._fashion_subset((0, 2, 4, 6, 8))),
    ("lattice-small", "small", "inverted lattices, 8 per class", 8, _lattice_small),
    ("cells-small", "small", "near cells, 8 per class", 8, _cells_small),
    ("textures-small", "small", "near none (natural textures), 8 per class", 8, _textures),
    ("retina-zoom", "none", "near none (fundus, magnification classes)", 40, _zoom_levels(_skimage("retina"))),
    ("faces", "none", "near none (grey faces vs not)", 40, _faces),
    ("hubble-zoom", "none", "near none (sky survey, magnification classes)", 40,
     _zoom_levels(_skimage("hubble_deep_field"), (40, 100, 240))),
)


def assign_new(old: dict[str, tuple[str, str]], seed: int = 20261130) -> dict[str, str]:
    """The split of the new targets, balanced per group over old + new: within each group, in a
    seeded random order, each new target goes to the split with fewer targets of that group so
    far (a tie: the split with fewer targets overall; then a seeded coin). ``old`` maps the
    protocol-1 targets to (split, group)."""
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    for group in ("near", "shifted", "small", "none"):
        names = [n for n, g, *_ in NEW if g == group]
        for name in rng.permutation(names):
            every = [v for v in old.values()] + [(sp, next(g for n, g, *_ in NEW if n == k)) for k, sp in out.items()]
            in_group = {sp: sum(1 for s_, g in every if s_ == sp and g == group) for sp in ("dev", "test")}
            total = {sp: sum(1 for s_, _ in every if s_ == sp) for sp in ("dev", "test")}
            key = {sp: (in_group[sp], total[sp], rng.random()) for sp in ("dev", "test")}
            out[str(name)] = min(key, key=key.get)
    return out


_OLD_V2 = (
    _old("stripes-new-angles", "near"),
    _old("stripes-low-contrast-inverted", "shifted"),
    _old("blobs-new-scales", "near"),
    _old("shapes-new", "near"),
    _old("fashion-5-small", "near"),
    _old("fashion-inverted", "shifted"),
    _old("digits", "none"),
    _old("digits-small", "small", 8),
    _old("grey-photos", "shifted"),
    _old("textures", "none"),
    _old("microscopy", "none"),
    _old("stripes-fine-angles", "near"),
)
_SPLIT = assign_new({t.name: (t.split, t.group) for t in _OLD_V2})
TARGETS = (*_OLD_V2, *(TargetV2(name, _SPLIT[name], group, rel, n, build) for name, group, rel, n, build in NEW))


def make_target(name: str, seed: int = 0, n_per_class: int | None = None, n_test: int | None = None):
    """``(user_images, user_labels, test_images, test_labels, class_names)``: the user's
    ``n_per_class`` per class and ``n_test`` held-out per class, from one seeded stream (the
    first images of each class go to the user); classes with fewer images split what there is."""
    return make_from(TARGETS, "v2", name, seed, n_per_class, n_test)


def make_from(targets, stream: str, name: str, seed: int, n_per_class: int | None, n_test: int | None):
    """:func:`make_target` over ``targets``, seeded by ``stream`` ("v2", "v3": each protocol its own)."""
    t = next((t for t in targets if t.name == name), None)
    if t is None:
        protocol = stream.removeprefix("v")
        raise KeyError(f"unknown protocol-{protocol} target '{name}'; known: {', '.join(x.name for x in targets)}")
    n_user, n_te = n_per_class or t.n_per_class, t.n_test if n_test is None else n_test
    rng = np.random.default_rng([seed, zlib.crc32((stream + "/" + name).encode())])
    imgs, labels, names = t.build(n_user + n_te, rng)
    imgs, labels = np.stack(imgs), np.asarray(labels)
    user = np.concatenate([np.flatnonzero(labels == c)[:n_user] for c in np.unique(labels)])
    test = np.setdiff1d(np.arange(len(labels)), user)
    return imgs[user], labels[user], imgs[test], labels[test], names
