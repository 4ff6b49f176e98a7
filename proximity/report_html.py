"""The HTML report: one self-contained page (inline CSS and SVG; no script, font, image or style is
fetched from anywhere — its Content-Security-Policy forbids it) with the ranking, each candidate's
signals with their sd as small plots, the risk with its interval and calibration scope, the fit
rule, the sample (classes, skipped files), failed and set-aside candidates and the settings.

``render_html(ranking) -> str``; ``proximity rank … --format html --output r.html`` and
``proximity report RESULT.json --format html --output r.html`` write it.
"""

from __future__ import annotations

import json
import math
from html import escape
from typing import Iterable

from .report import Candidate, Ranking
from .report_table import exclusion_kinds, rule_signals, static_rule_note

#: Signals shown in percent (balanced accuracies and their difference).
PERCENT = {"probe", "gain", "knn", "control", "scratch", "finetune"}
#: Order of the signal panels after the fit rule's own signals.
ORDER = ("probe", "gain", "logme", "early_shift", "frechet", "prior", "knn", "control")
BAND_COLOUR = {"low": "#2e7d32", "medium": "#a86b00", "high": "#c62828", "unknown": "#757575"}
BANDS = ((0.0, 0.2, "#e3f1e4"), (0.2, 0.5, "#fdf1d6"), (0.5, 1.0, "#fbe2e2"))   # low / medium / high
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:0;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:18px 22px 40px}
h1{font-size:1.5em;margin:.2em 0}
h2{font-size:1.15em;margin:1.6em 0 .5em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub,.note,.dim{color:#5f6368}.note{font-size:.9em}
.warn{background:#fff8e1;border-left:3px solid #f9a825;padding:6px 10px}
.pick{background:#fff;border:1px solid #ddd;border-radius:8px;padding:10px 14px}
table{border-collapse:collapse;background:#fff;font-size:.92em}th,td{padding:5px 8px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}th{background:#f1f3f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}.band{font-weight:600;white-space:nowrap}td.m{min-width:15em}.model{font-weight:600;overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
.card{background:#fff;border:1px solid #e0e0e0;border-radius:8px;padding:8px 10px}.card h3{font-size:1em;margin:0 0 2px}
.card p{margin:0 0 4px;font-size:.85em;color:#5f6368}svg text{font:11px system-ui,sans-serif;fill:#333}
code{background:#f1f3f4;padding:0 3px;border-radius:3px}details summary{cursor:pointer}
"""


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def _num(v: float | None, pct: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    v = v * 100 if pct else v
    if pct:
        return f"{v:.1f}"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _fit(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _sd(v: float | None, pct: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return ""
    return f" ± {v * 100:.1f}" if pct else f" ± {v:.2g}"


def _risk_svg(c: Candidate, width: int = 170) -> str:
    """The risk on a 0–1 axis over the three bands: the point and its 90 % interval."""
    h, pad = 26, 4
    x = lambda p: pad + p * (width - 2 * pad)  # noqa: E731
    parts = [f'<rect x="{x(a):.1f}" y="4" width="{x(b) - x(a):.1f}" height="12" fill="{col}"/>' for a, b, col in BANDS]
    parts += [f'<text x="{x(t):.1f}" y="{h - 1}" text-anchor="middle">{t:g}</text>' for t in (0, 0.2, 0.5, 1)]
    if c.risk is None:
        parts.append(f'<text x="{width / 2:.0f}" y="14" text-anchor="middle">unknown</text>')
    else:
        colour = BAND_COLOUR.get(c.risk_band, "#333")
        if c.risk_interval is not None:
            lo, hi = c.risk_interval
            parts.append(f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="10" y2="10" stroke="{colour}" '
                         'stroke-width="2"/>')
            parts += [f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="6" y2="14" stroke="{colour}" stroke-width="2"/>'
                      for v in (lo, hi)]
        parts.append(f'<circle cx="{x(c.risk):.1f}" cy="10" r="4.5" fill="{colour}"/>')
    label = f"risk {c.risk_band}" + ("" if c.risk is None else f" {c.risk:.2f}")
    if c.risk_interval is not None:
        label += f", 90 % interval {c.risk_interval[0]:.2f}–{c.risk_interval[1]:.2f}"
    return (f'<svg width="{width}" height="{h}" viewBox="0 0 {width} {h}" role="img" aria-label="{_e(label)}">'
            f'<title>{_e(label)}</title>{"".join(parts)}</svg>')


def _signal_svg(name: str, ranked: list[Candidate], pct: bool) -> str:
    """One row per candidate: the value as a dot, ± sd as a whisker, on an axis shared by the run."""
    vals = [(c, c.signals.get(name)) for c in ranked]
    spans = [(s.value - (s.sd or 0), s.value + (s.sd or 0)) for _, s in vals if s is not None and s.value is not None]
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    if name == "gain":
        lo, hi = min(lo, 0.0), max(hi, 0.0)                  # zero: the pretrained weights do no better than random
    if hi - lo < 1e-12:
        lo, hi = lo - max(abs(lo) * 0.1, 0.5 if not pct else 0.05), hi + max(abs(hi) * 0.1, 0.5 if not pct else 0.05)
    lo, hi = lo - 0.04 * (hi - lo), hi + 0.04 * (hi - lo)
    if pct:                                                  # an accuracy ± sd stays on its scale
        lo, hi = max(lo, -1.0 if name == "gain" else 0.0), min(hi, 1.0)
    width, left, right, row = 330, 34, 104, 18
    h = row * len(vals) + 18
    def x(v: float) -> float:                                # clipped to the plot: a whisker never covers a label
        return left + min(max((v - lo) / (hi - lo), 0.0), 1.0) * (width - left - right)

    parts = [f'<line x1="{left}" x2="{width - right}" y1="{h - 14}" y2="{h - 14}" stroke="#bbb"/>',
             f'<text x="{left}" y="{h - 2}" text-anchor="start">{_e(_num(lo, pct))}</text>',
             f'<text x="{width - right}" y="{h - 2}" text-anchor="end">{_e(_num(hi, pct))}</text>']
    if lo < 0 < hi and name == "gain":
        parts.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="2" y2="{h - 14}" stroke="#999" '
                     'stroke-dasharray="3 2"/>')
    for i, (c, s) in enumerate(vals):
        y = 10 + i * row
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">#{c.rank}</text>')
        if s is None or s.value is None:
            why = "not computed" if s is None else s.reason or "absent"
            parts.append(f'<text x="{left}" y="{y + 4}" fill="#888"><title>{_e(why)}</title>— {_e(why[:44])}</text>')
            continue
        tip = f"#{c.rank} {c.model}: {_num(s.value, pct)}{_sd(s.sd, pct)}" + (f" ({s.reason})" if s.reason else "")
        if s.sd:
            parts.append(f'<line x1="{x(s.value - s.sd):.1f}" x2="{x(s.value + s.sd):.1f}" y1="{y}" y2="{y}" '
                         'stroke="#1a73e8" stroke-width="2"/>')
        parts.append(f'<circle cx="{x(s.value):.1f}" cy="{y}" r="4" fill="#1a73e8"><title>{_e(tip)}</title></circle>')
        parts.append(f'<text x="{width - right + 10}" y="{y + 4}">{_e(_num(s.value, pct) + _sd(s.sd, pct))}</text>')
    return (f'<svg width="{width}" height="{h}" viewBox="0 0 {width} {h}" role="img" '
            f'aria-label="{_e(name)} of every candidate, value and sd">{"".join(parts)}</svg>')


def _signal_order(r: Ranking) -> list[str]:
    present = {n for c in r.ranking for n in c.signals}
    names = [n for n in rule_signals(r) + list(ORDER) if n in present]
    return list(dict.fromkeys(names + sorted(present - set(names))))


def _signals(r: Ranking) -> str:
    if not r.ranking:
        return ""
    cards, absent = [], []
    basis = set(rule_signals(r))
    for name in _signal_order(r):
        got = [c.signals[name] for c in r.ranking if name in c.signals]
        if not any(s.value is not None for s in got):
            reasons = list(dict.fromkeys(s.reason for s in got if s.reason))
            absent.append(f"<li><b>{_e(name)}</b>: {_e('; '.join(reasons[:3]) or 'absent')}</li>")
            continue
        pct = name in PERCENT
        better = "higher is better" if got[0].higher_is_better else "lower is better"
        tag = " · <b>used by the fit</b>" if name in basis else ""
        cards.append(f'<div class="card"><h3>{_e(name)}{" (%)" if pct else ""}</h3><p>{better}{tag}</p>'
                     f'{_signal_svg(name, r.ranking, pct)}</div>')
    out = ('<h2 id="signals">Signals</h2><p class="note">Each candidate by rank: the value as a dot, ± its sd (over '
           'folds or bootstrap resamples) as a line, on an axis shared by the candidates of this run. Hover for the '
           f'detail.</p><div class="grid">{"".join(cards)}</div>')
    if absent:
        out += f'<p>Not computed for any candidate:</p><ul class="note">{"".join(absent)}</ul>'
    return out


def _ranking(r: Ranking) -> str:
    if not r.ranking:
        return ('<h2 id="ranking">Ranking</h2><p><b>No backbone could be ranked</b> — see the failed candidates '
                'below.</p>')
    rows = []
    for c in r.ranking:
        colour = BAND_COLOUR.get(c.risk_band, "#333")
        risk = c.risk_band + ("" if c.risk is None else f" {c.risk:.2f}")
        iv = ("" if c.risk_interval is None
              else f'<br><span class="dim">{c.risk_interval[0]:.2f}–{c.risk_interval[1]:.2f}</span>')
        rows.append(f'<tr><td class="num">{c.rank}</td><td class="m"><span class="model">{_e(c.model)}</span><br>'
                    f'<span class="dim">{_e(c.domain)}</span></td><td class="num">{_fit(c.fit)}</td>'
                    f'<td>{_e(", ".join(c.fit_basis) or "—")}</td>'
                    f'<td><span class="band" style="color:{colour}">{_e(risk)}</span>{iv}</td><td>{_risk_svg(c)}</td>'
                    f'<td class="note">{_e(c.risk_reason)}</td></tr>')
    return ('<h2 id="ranking">Ranking</h2><div class="scroll"><table><thead><tr><th>#</th><th>model (domain)</th>'
            '<th>fit</th><th>fit from</th><th>risk</th><th>risk and its 90 % interval</th><th>why</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _rule(r: Ranking) -> str:
    rule = r.fit_rule
    if not rule:
        return ('<h2 id="fit-rule">Fit rule</h2><p>Not recorded in this result (written by a proximity that did not '
                'record it: schema 1).</p>')
    terms = "".join(f"<tr><td>{_e(t[0])}</td><td class='num'>{_e(t[1])}</td></tr>" for t in rule.get("terms", []))
    kind = {"single": "one signal", "z-mean": "weighted mean of within-run z-scores",
            "rank-mean": "weighted mean of within-run rank percentiles"}.get(rule.get("kind", ""), rule.get("kind", ""))
    small = rule.get("small")
    switch = (f"<p>With fewer than {_e(rule.get('small_below'))} images in the smallest class the rule "
              f"<b>{_e(small.get('name', ''))}</b> is used instead.</p>" if small else "")
    return ('<h2 id="fit-rule">Fit rule</h2><p>The fit of every candidate was produced by the rule '
            f'<b>{_e(rule.get("name", ""))}</b> '
            f'({_e(kind)}; mode {_e(rule.get("mode", r.mode))}) over these '
            'signals:</p><table><thead><tr><th>signal</th>'
            f'<th>weight</th></tr></thead><tbody>{terms}</tbody></table>{switch}<p class="note">Rules are data '
            '(<code>catalog/fit_rule.json</code>, chosen on the benchmark\'s dev targets); without a shipped rule the '
            'v0 rule runs. A candidate without the rule\'s signals has no fit and is ranked last, by prior; '
            '"fit from" in the ranking names the signals each fit used.</p>'
            + (f'<p class="warn">{_e(note)}</p>' if (note := static_rule_note(r)) else ""))


def _risk_scope(r: Ranking) -> str:
    m = r.risk_model
    if m:
        what = ("a logistic model calibrated on the benchmark" if m.get("calibrated")
                else "the uncalibrated v0 rule")
        scope = (f"<p>The risk is P(fine-tuning from the backbone ends below training the same architecture from "
                 f"scratch), from {_e(what)}{' fitted ' + _e(m['fitted']) if m.get('fitted') else ''}. "
                 f"<b>Calibration scope:</b> {_e(m.get('coverage') or 'not stated')}. Outside it the numbers are "
                 "extrapolations; a reason that says \"outside the benchmark's range\" marks a widened interval.</p>")
    else:
        scope = ("<p>The risk is P(fine-tuning ends below training from scratch). This result does not record which "
                 "risk model produced it; calibration is claimed only for the benchmark's targets (README).</p>")
    bands = " ".join(f'<span style="background:{col};padding:1px 6px">{name} {a:g}–{b:g}</span>'
                     for (a, b, col), name in zip(BANDS, ("low", "medium", "high"), strict=True))
    return f'<h2 id="risk">Risk: what it means and where it is calibrated</h2>{scope}<p class="note">Bands: {bands}</p>'


def _classes_svg(classes: dict[str, int], limit: int = 40) -> str:
    items = sorted(classes.items(), key=lambda t: (-t[1], t[0]))
    shown, rest = items[:limit], items[limit:]
    top = max(n for _, n in shown)
    row, label_w, bar_w = 16, 150, 240
    parts = []
    for i, (name, n) in enumerate(shown):
        y = i * row
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" '
                     f'text-anchor="end">{_e(name[:24])}<title>{_e(name)}</title></text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{max(1.0, n / top * bar_w):.1f}" height="11" '
                     'fill="#8ab4f8"/>'
                     f'<text x="{label_w + n / top * bar_w + 4:.1f}" y="{y + 12}">{n}</text>')
    svg = (f'<svg width="{label_w + bar_w + 50}" height="{row * len(shown) + 4}" role="img" '
           f'aria-label="images per class">{"".join(parts)}</svg>')
    return svg + (f'<p class="note">and {len(rest)} more classes ({sum(n for _, n in rest)} images)</p>' if rest
                  else "")


def _table(head: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f'<div class="scroll"><table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>'


def _sample(r: Ranking) -> str:
    s = r.sample
    k = s.n_classes
    classes = f"; {k} class{'es' if k != 1 else ''}" if k else ""
    head = (f'<h2 id="sample">Sample</h2><p>{s.n_images} images sampled from {s.n_found} found under '
            f'<code>{_e(s.path)}</code>; {_e(s.labels_note or "labels: " + s.labels)}{classes}.</p>')
    if s.classes:
        head += _classes_svg(s.classes)
    if s.skipped:
        n = len(s.skipped)
        head += f"<p><b>{n} file{'s' if n != 1 else ''} skipped</b>, each with its reason:</p>"
        head += _table(("file", "reason"), ((x.get("path", ""), x.get("reason", "")) for x in s.skipped))
    else:
        head += "<p>No file was skipped.</p>"
    return head


def _failed_excluded(r: Ranking) -> str:
    out = f'<h2 id="failed">Failed candidates ({len(r.failed)})</h2>'
    out += (_table(("model", "stage", "error"), ((f.model, f.stage, f.error) for f in r.failed)) if r.failed
            else "<p>None: every candidate tried was ranked.</p>")
    out += f'<h2 id="excluded">Set aside ({len(r.excluded)})</h2>'
    if r.excluded:
        kinds = ", ".join(f"{n} {k}" for k, n in exclusion_kinds(r.excluded).items())
        out += (f"<details><summary>{len(r.excluded)} catalog entries were not tried: {_e(kinds)}</summary>"
                + _table(("model", "reason"),
                         ((x.get("model", ""), x.get("reason", "")) for x in r.excluded)) + "</details>")
    else:
        out += "<p>None.</p>"
    return out


def _pick(r: Ranking) -> str:
    if not r.ranking:
        return '<p class="pick"><b>No backbone could be ranked.</b> The failed candidates below say why.</p>'
    b = r.ranking[0]
    risk = b.risk_band + ("" if b.risk is None else f" {b.risk:.2f}")
    return (f'<p class="pick">First: <b>{_e(b.model)}</b> ({_e(b.domain)}), fit {_fit(b.fit)}, negative-transfer risk '
            f'<b style="color:{BAND_COLOUR.get(b.risk_band, "#333")}">{_e(risk)}</b> — {_e(b.risk_reason)}</p>')


def render_html(r: Ranking) -> str:
    """The whole page as a string (UTF-8 text, no external reference of any kind)."""
    from ._version import __version__

    n = len(r.ranking)
    title = f"proximity: {n} backbone{'s' if n != 1 else ''} ranked for {r.sample.path}"
    settings = _table(("setting", "value"), ((k, "—" if v is None else v if isinstance(v, str) else json.dumps(v))
                                              for k, v in r.settings.items()))
    return "\n".join([
        '<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<title>{_e(title)}</title><style>{CSS}</style></head><body><main>',
        f'<h1>Which backbone to start from for <code>{_e(r.sample.path)}</code></h1>',
        f'<p class="sub">{n} ranked · {len(r.failed)} failed · {len(r.excluded)} set aside · mode {_e(r.mode)} · '
        f'{r.sample.n_images} images</p>',
        _pick(r), _ranking(r), _signals(r), _rule(r), _risk_scope(r), _sample(r), _failed_excluded(r),
        f'<h2 id="settings">Settings</h2>{settings}',
        f'<p class="note">Page written by proximity {_e(__version__)}: one self-contained file — nothing on it is '
        'fetched from anywhere.</p>',
        '</main></body></html>'])
