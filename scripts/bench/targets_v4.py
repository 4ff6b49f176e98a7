"""Protocol 4's fresh test targets: twelve new 64 px labelled tasks, all *test*, defined after
protocol 4's rules were chosen on the 40 targets protocols 2 and 3 have read
(``results/v4/PROTOCOL.md``) and committed before any of them was trained on or scored.

The groups mirror protocols 2 and 3: three *near* a source domain (new classes of its world),
three *shifted* (a source world under a contrast, style or colour shift, with new classes: every
source's own class set is already a dev target), three *small* (8 images per class for the
user) and three near *no* source domain (fractals, node-link diagrams, charts). As declared, none
reuses the images or the class set of a dev target: every target here is drawn procedurally,
none from Fashion-MNIST, scikit-learn's digits or scikit-image's photographs.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from . import domains as D
from .targets_v2 import TargetV2, make_from

SIZE = D.SIZE


def _noisy_background(rng) -> Image.Image:
    return Image.fromarray(D._to_uint8(D._colourise(np.clip(0.5 + 0.15 * rng.normal(size=(SIZE, SIZE)), 0, 1), rng)))


def _polygon(kind: str, cx: float, cy: float, r: float, t: float) -> list[tuple[float, float]]:
    """Vertices of a regular pentagon / hexagon, a five-pointed star or an arrow, rotated by ``t``."""
    if kind in ("pentagon", "hexagon"):
        k = 5 if kind == "pentagon" else 6
        a = t + 2 * np.pi * np.arange(k) / k
        pts = np.stack([np.cos(a), np.sin(a)], 1) * r
    elif kind == "star":
        a = t + np.pi * np.arange(10) / 5
        pts = np.stack([np.cos(a), np.sin(a)], 1) * np.where(np.arange(10) % 2 == 0, r, 0.42 * r)[:, None]
    else:  # arrow: a shaft and a head, pointing along t
        base = np.array([[-1, -0.22], [0.2, -0.22], [0.2, -0.6], [1, 0], [0.2, 0.6], [0.2, 0.22], [-1, 0.22]]) * r
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        pts = base @ rot.T
    return [(cx + x, cy + y) for x, y in pts]


def _shapes_polygons(n, rng):
    """Near shapes: four new filled shapes on the source's noisy colour backgrounds."""
    names = ["pentagon", "hexagon", "star", "arrow"]
    out, lab = [], []
    for c, kind in enumerate(names):
        for _ in range(n):
            im = _noisy_background(rng)
            r = rng.uniform(11, 24)
            cx, cy = rng.uniform(r, SIZE - r, 2)
            ImageDraw.Draw(im).polygon(_polygon(kind, cx, cy, r, rng.uniform(0, 2 * np.pi)),
                                       fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
            out.append(np.asarray(im))
            lab.append(c)
    return out, lab, names


def _cells_sizes(n, rng):
    """Near cells: classes = nucleus size (the source's classes are layouts), 8–14 round nuclei."""
    names, radii = ["small", "medium", "large"], ((1.9, 2.7), (2.7, 3.5), (3.5, 4.5))
    out, lab = [], []
    for c, (lo, hi) in enumerate(radii):
        for _ in range(n):
            k = int(rng.integers(8, 15))
            centres = rng.uniform(6, SIZE - 6, (k, 2))
            r = rng.uniform(lo, hi, (k, 1)) * rng.uniform(0.85, 1.15, (k, 2))
            out.append(D._nuclei(centres, r, rng.uniform(0, np.pi, k), rng))
            lab.append(c)
    return out, lab, names


def _glyph_classes(chars: str, size=(22, 40), invert: bool = False):
    """One class per character of ``chars`` in the source's glyph style; ``invert``: light ink on a
    dark page (a contrast shift)."""
    def build(n, rng):
        out = []
        for ch in chars:
            for _ in range(n):
                img = D.glyph(ch, rng, size)
                out.append(255 - img if invert else img)
        return out, [c for c in range(len(chars)) for _ in range(n)], list(chars)
    return build


def _shapes_outline_counts(n, rng):
    """Shifted shapes: outlines instead of filled shapes (a style shift), classes = how many (1–3)."""
    names = ["one", "two", "three"]
    out, lab = [], []
    for c in range(3):
        for _ in range(n):
            im = _noisy_background(rng)
            d = ImageDraw.Draw(im)
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            placed: list[tuple[float, float, float]] = []
            while len(placed) < c + 1:
                r = rng.uniform(6, 12)
                cx, cy = rng.uniform(r + 1, SIZE - r - 1, 2)
                if all(np.hypot(cx - x, cy - y) > r + q + 3 for x, y, q in placed):
                    placed.append((cx, cy, r))
                    box = [cx - r, cy - r, cx + r, cy + r]
                    (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, outline=colour, width=2)
            out.append(np.asarray(im))
            lab.append(c)
    return out, lab, names


def _blobs_directional_grey(n, rng):
    """Shifted blobs: the source's smoothed noise, grey and at low contrast, smoothed more along
    one direction; classes = that direction."""
    names = ["0deg", "45deg", "90deg", "135deg"]
    out, lab = [], []
    for c, angle in enumerate((0, 45, 90, 135)):
        for _ in range(n):
            g = rng.normal(size=(2 * SIZE, 2 * SIZE))
            g = gaussian_filter(g, (1.5, rng.uniform(2.2, 3.2)), mode="wrap")    # along x, then rotate
            g = np.asarray(Image.fromarray(g.astype(np.float32)).rotate(angle + rng.normal(0, 4),
                                                                         resample=Image.Resampling.BILINEAR))
            g = g[SIZE // 2:SIZE // 2 + SIZE, SIZE // 2:SIZE // 2 + SIZE]
            g = (g - g.mean()) / (g.std() + 1e-8)
            g = np.clip(0.5 + 0.06 * g + 0.06 * rng.normal(size=g.shape), 0, 1)
            out.append(np.repeat(D._to_uint8(g)[..., None], 3, 2))
            lab.append(c)
    return out, lab, names


def _stripes_plaid(n, rng):
    """Near stripes: one grating, or two crossed at 90° or at 60° (classes), any orientation."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    names = ["single", "plaid90", "plaid60"]
    out, lab = [], []
    for c, second in enumerate((None, 90, 60)):
        for _ in range(n):
            t, f = rng.uniform(0, np.pi), rng.uniform(0.06, 0.16)
            g = np.sin(2 * np.pi * f * (xx * np.cos(t) + yy * np.sin(t)) + rng.uniform(0, 6.3))
            if second is not None:
                t2 = t + np.deg2rad(second + rng.normal(0, 3))
                g = g + np.sin(2 * np.pi * f * rng.uniform(0.9, 1.1) * (xx * np.cos(t2) + yy * np.sin(t2))
                               + rng.uniform(0, 6.3))
                g = g / 2
            g = np.clip((g + 0.4 * rng.normal(size=g.shape) + 1.4) / 2.8, 0, 1)
            out.append(D._to_uint8(D._colourise(g, rng)))
            lab.append(c)
    return out, lab, names


def _ca_rules(n, rng):
    """Near none: space-time images of elementary cellular automata (rules 30, 90, 110, 184) from
    a random row, cropped at a random time, in two random colours."""
    rules = (30, 90, 110, 184)
    out, lab = [], []
    for c, rule in enumerate(rules):
        table = np.array([(rule >> i) & 1 for i in range(8)], np.uint8)
        for _ in range(n):
            # a ring of 37 cells, 32 shown (rule 90 dies out on a ring of 2^k cells)
            width, skip = 37, int(rng.integers(0, 24))
            row = (rng.random(width) < rng.uniform(0.3, 0.7)).astype(np.uint8)
            rows = []
            for _ in range(skip + SIZE // 2):
                rows.append(row)
                row = table[4 * np.roll(row, 1) + 2 * row + np.roll(row, -1)]
            g = np.kron(np.array(rows[skip:], float)[:, :SIZE // 2], np.ones((2, 2)))   # 32 cells, 2 px each
            out.append(D._to_uint8(D._colourise(g, rng)))
            lab.append(c)
    return out, lab, [f"rule{r}" for r in rules]


def _lattice_defects(n, rng):
    """A crystal-like lattice of dots (inspection-style): perfect, with vacancies, or with a
    dislocation (half of the rows shifted by half a period)."""
    names = ["perfect", "vacancies", "dislocation"]
    out, lab = [], []
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    for c, kind in enumerate(names):
        for _ in range(n):
            p = rng.uniform(7, 10)
            t = rng.uniform(-0.25, 0.25)
            u, v = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
            iu, iv = np.round(u / p), np.round(v / p)
            if kind == "dislocation":          # rows past a random line shift by half a period
                cut = rng.uniform(0.3, 0.7) * SIZE
                shifted = v > cut
                iu = np.where(shifted, np.round(u / p - 0.5) + 0.5, iu)
            d2 = (u - iu * p) ** 2 + (v - iv * p) ** 2
            g = np.exp(-d2 / (2 * (0.18 * p) ** 2))
            if kind == "vacancies":            # 3–5 atoms missing
                cells = np.unique(np.stack([iu.ravel(), iv.ravel()], 1), axis=0)
                inner = cells[(cells[:, 0] * p > 8) & (cells[:, 0] * p < SIZE - 8)
                              & (cells[:, 1] * p > 8) & (cells[:, 1] * p < SIZE - 8)]
                for a, b in inner[rng.choice(len(inner), int(rng.integers(3, 6)), replace=False)]:
                    g = np.where((iu == a) & (iv == b), 0.0, g)
            g = np.clip(gaussian_filter(g, 0.5) + 0.08 * rng.normal(size=g.shape), 0, 1)
            out.append(D._to_uint8(D._colourise(g, rng)))
            lab.append(c)
    return out, lab, names


def _julia_sets(n, rng):
    """Near none: filled Julia sets z → z² + c for four regions of c (connected blob, dendrite,
    Douady rabbit, Siegel disc), a random view and colour map of each."""
    centres = {"blob": -0.2 + 0.1j, "dendrite": 0.0 + 1.0j, "rabbit": -0.123 + 0.745j, "siegel": -0.391 - 0.587j}
    out, lab = [], []
    for cl, c0 in enumerate(centres.values()):
        for _ in range(n):
            c = c0 + complex(*rng.normal(0, 0.01, 2))
            scale, ctr = rng.uniform(1.3, 1.8), complex(*rng.uniform(-0.3, 0.3, 2))
            ax = np.linspace(-scale, scale, SIZE)
            z = (ax[None, :] + 1j * ax[:, None]) * np.exp(1j * rng.uniform(0, 2 * np.pi)) + ctr
            esc = np.zeros(z.shape)
            for i in range(40):
                live = np.abs(z) <= 2
                z[live] = z[live] ** 2 + c
                esc[live] = i
            g = np.sqrt(esc / 39.0)
            out.append(D._to_uint8(D._colourise(g, rng)))
            lab.append(cl)
    return out, lab, list(centres)


def _graphs(n, rng):
    """Near none: node-link diagrams of four kinds of graph (a tree, a ring, a grid, a star), nodes
    at jittered layout positions, on a light page."""
    names = ["tree", "ring", "grid", "star"]
    out, lab = [], []
    for c, kind in enumerate(names):
        for _ in range(n):
            if kind == "tree":
                pos, edges = [(0.5, 0.1)], []
                for depth in (1, 2):
                    parents = [i for i, (_, y) in enumerate(pos) if abs(y - (0.1 + 0.4 * (depth - 1))) < 1e-9]
                    for p in parents:
                        for _ in range(int(rng.integers(2, 4))):
                            pos.append((rng.uniform(0.08, 0.92), 0.1 + 0.4 * depth))
                            edges.append((p, len(pos) - 1))
            elif kind == "ring":
                k = int(rng.integers(5, 10))
                a = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(k) / k
                pos = [(0.5 + 0.38 * np.cos(x), 0.5 + 0.38 * np.sin(x)) for x in a]
                edges = [(i, (i + 1) % k) for i in range(k)]
            elif kind == "grid":
                k = int(rng.integers(3, 5))
                pos = [(0.15 + 0.7 * i / (k - 1), 0.15 + 0.7 * j / (k - 1)) for j in range(k) for i in range(k)]
                edges = [(j * k + i, j * k + i + 1) for j in range(k) for i in range(k - 1)]
                edges += [(j * k + i, (j + 1) * k + i) for j in range(k - 1) for i in range(k)]
            else:
                k = int(rng.integers(5, 10))
                a = rng.uniform(0, 2 * np.pi, k)
                pos = [(0.5, 0.5)] + [(0.5 + rng.uniform(0.25, 0.42) * np.cos(x), 0.5 + rng.uniform(0.25, 0.42)
                                       * np.sin(x)) for x in a]
                edges = [(0, i) for i in range(1, k + 1)]
            pos = [(SIZE * (x + rng.normal(0, 0.02)), SIZE * (y + rng.normal(0, 0.02))) for x, y in pos]
            page = tuple(int(v) for v in rng.integers(200, 256, 3))
            ink = tuple(int(v) for v in rng.integers(0, 120, 3))
            im = Image.new("RGB", (SIZE, SIZE), page)
            d = ImageDraw.Draw(im)
            for i, j in edges:
                d.line([pos[i], pos[j]], fill=ink, width=1)
            r = rng.uniform(1.8, 3.2)
            for x, y in pos:
                d.ellipse([x - r, y - r, x + r, y + r], fill=ink)
            out.append(_shrink_noisy(im, page, rng))
            lab.append(c)
    return out, lab, names


def _shrink_noisy(im: Image.Image, page: tuple, rng) -> np.ndarray:
    """A drawn diagram shrunk to 55–85 % at a random place on its page, with pixel noise."""
    side = int(SIZE * rng.uniform(0.55, 0.85))
    canvas = Image.new("RGB", (SIZE, SIZE), page)
    corner = tuple(int(v) for v in rng.integers(0, SIZE - side + 1, 2))
    canvas.paste(im.resize((side, side), Image.Resampling.BILINEAR), corner)
    g = np.asarray(canvas) / 255.0 + 0.08 * rng.normal(size=(SIZE, SIZE, 1))
    return D._to_uint8(np.clip(g, 0, 1))


def _charts(n, rng):
    """Near none: small charts of four kinds (bars, pie, scatter, histogram-like steps)."""
    names = ["bars", "pie", "scatter", "area"]
    out, lab = [], []
    for c, kind in enumerate(names):
        for _ in range(n):
            page = tuple(int(v) for v in rng.integers(215, 256, 3))
            im = Image.new("RGB", (SIZE, SIZE), page)
            d = ImageDraw.Draw(im)
            cols = [tuple(int(v) for v in rng.integers(0, 200, 3)) for _ in range(6)]
            axis = tuple(int(v) for v in rng.integers(0, 90, 3))
            if kind != "pie":
                d.line([(6, 58), (60, 58)], fill=axis)
                d.line([(6, 58), (6, 4)], fill=axis)
            if kind == "bars":
                k = int(rng.integers(3, 8))
                w = 50 / k
                for i in range(k):
                    h = rng.uniform(6, 50)
                    d.rectangle([8 + i * w + 1, 57 - h, 8 + (i + 1) * w - 2, 57], fill=cols[i % 6])
            elif kind == "pie":
                cuts = np.sort(rng.uniform(0, 360, int(rng.integers(2, 6))))
                cuts = np.append(cuts, cuts[0] + 360)
                r = rng.uniform(18, 28)
                cx, cy = rng.uniform(r + 2, SIZE - r - 2, 2)
                for i in range(len(cuts) - 1):
                    d.pieslice([cx - r, cy - r, cx + r, cy + r], cuts[i], cuts[i + 1], fill=cols[i % 6])
            elif kind == "scatter":
                k = int(rng.integers(15, 40))
                slope = rng.normal(0, 0.8)
                xs = rng.uniform(10, 58, k)
                ys = np.clip(32 - slope * (xs - 34) + rng.normal(0, 8, k), 6, 56)
                for x, y in zip(xs, ys, strict=True):
                    d.ellipse([x - 1.3, y - 1.3, x + 1.3, y + 1.3], fill=cols[0])
            else:
                y = np.cumsum(rng.normal(0, 4, 26)) + 30
                y = np.clip(y - y.min() + 8, 8, 52)
                xs = np.linspace(7, 60, 26)
                d.polygon([(7, 57)] + [(x, 57 - v) for x, v in zip(xs, y, strict=True)] + [(60, 57)], fill=cols[0])
            out.append(_shrink_noisy(im, page, rng))
            lab.append(c)
    return out, lab, names


# (name, group, relation, n_per_class, build); every one is a test target.
NEW = (
    ("shapes-polygons", "near", "near shapes (pentagon, hexagon, star, arrow)", 40, _shapes_polygons),
    ("cells-sizes", "near", "near cells (nucleus-size classes)", 40, _cells_sizes),
    ("glyphs-lowercase", "near", "near glyphs (lower-case letters)", 40, _glyph_classes("aegkr")),
    ("glyphs-inverted-letters", "shifted", "contrast shift of glyphs (new letters, light ink on a dark page)", 40,
     _glyph_classes("CJLPU", invert=True)),
    ("shapes-outline-counts", "shifted", "style shift of shapes (outlines; classes = how many)", 40,
     _shapes_outline_counts),
    ("blobs-directional-grey", "shifted",
     "the stripes source's four orientation classes on a grey, faint blob-like texture (a texture, colour and "
     "contrast shift)", 40, _blobs_directional_grey),
    ("stripes-plaid-small", "small",
     "near stripes (one grating, the source's own kind of image, or two crossed), 8 per class", 8, _stripes_plaid),
    ("ca-rules-small", "small", "near none (cellular automata, four rules), 8 per class", 8, _ca_rules),
    ("lattice-defects-small", "small",
     "near lattice, a source of the generalist only (a dot lattice: perfect, vacancies, dislocation), 8 per class",
     8, _lattice_defects),
    ("julia-sets", "none", "near none (Julia sets of four kinds)", 40, _julia_sets),
    ("graphs", "none", "near none (node-link diagrams of four kinds of graph)", 40, _graphs),
    ("charts", "none", "near none (bar, pie, scatter and area charts)", 40, _charts),
)

TARGETS = tuple(TargetV2(name, "test", group, rel, n, build) for name, group, rel, n, build in NEW)
# a mirror image changes the class: characters, directions (45° ↔ 135°), and an automaton's rule
# (rule 30 mirrored is rule 86, 110 is 124)
FLIP_UNSAFE = ("glyphs", "blobs-directional", "ca-rules")


def flip_ok(name: str) -> bool:
    """Whether a horizontal flip keeps the class."""
    return not name.startswith(FLIP_UNSAFE)


def make_target(name: str, seed: int = 0, n_per_class: int | None = None, n_test: int | None = None):
    """As :func:`targets_v2.make_target`, for the protocol-4 targets (their own seed stream, "v4")."""
    return make_from(TARGETS, "v4", name, seed, n_per_class, n_test)
