"""The terminal table of a :class:`~proximity.report.Ranking`, in a layout that fits the console.

Three layouts, the widest that fits (measured with Rich, not guessed from a column count):

* **full** — rank, model and domain, fit, the key signals (probe, gain, logme, early_shift,
  frechet, prior and whatever the fit rule uses), risk with its interval;
* **compact** (e.g. 80 columns) — rank, model, fit, the signals the fit rule uses, the gain
  (with labels) and the risk: every candidate's fit and risk, always;
* **blocks** (very narrow) — one short block of lines per candidate.

The lines after the table (reasons, failures, exclusions, skipped files, a legend) wrap at any
width and are the same in every layout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .report import Candidate, Ranking
from .types import Exclusion, SignalValue

#: signal name → (column header, shown in percent, digits); ``params`` (log10 of millions) is
#: shown as millions of parameters, 3 significant digits
COLUMNS = {"probe": ("probe %", True, 1), "gain": ("gain %", True, 1), "knn": ("knn %", True, 1),
           "control": ("control %", True, 1), "logme": ("logme", False, 2), "early_shift": ("shift", False, 2),
           "frechet": ("fd", False, 3), "prior": ("prior", False, 1), "params": ("params M", False, 3)}
FULL = ("probe", "gain", "logme", "early_shift", "frechet", "prior")
COLOUR = {"low": "green", "medium": "yellow", "high": "red", "unknown": "dim"}


def _cell(s: SignalValue | None, pct: bool = False, digits: int = 2) -> str:
    if s is None or s.value is None:
        return "—"
    scale = 100.0 if pct else 1.0
    sd = f"±{s.sd * scale:.{digits}f}" if s.sd is not None else ""
    return f"{s.value * scale:.{digits}f}{sd}"


def _signal_cell(c: Candidate, name: str) -> str:
    _, pct, digits = COLUMNS.get(name, (name, False, 2))
    s = c.signals.get(name)
    if name == "params" and s is not None and s.value is not None:
        return f"{10 ** s.value:.{digits}g}"
    return _cell(s, pct=pct, digits=digits)


def _risk(c: Candidate, sep: str = "\n") -> str:
    if c.screened:                                  # left out by the cascade's screen: not measured in full
        return "[dim]screened[/]"
    text = f"[{COLOUR.get(c.risk_band, 'dim')}]{c.risk_band}" + (f" {c.risk:.2f}" if c.risk is not None else "") + "[/]"
    if c.risk_interval is not None:
        lo, hi = c.risk_interval
        text += f"{sep}[dim]{lo:.2f}–{hi:.2f}[/]" if sep == "\n" else f"{sep}[dim]({lo:.2f}–{hi:.2f})[/]"
    return text


def rule_signals(r: Ranking) -> list[str]:
    """The signals of the fit rule that ran (its terms, then any candidate's basis), in order."""
    names = [t[0] for t in r.fit_rule.get("terms", [])]
    names += [t[0] for t in (r.fit_rule.get("small") or {}).get("terms", [])]
    names += [n for c in r.ranking for n in c.fit_basis]
    return list(dict.fromkeys(names))


def _table(r: Ranking, signals: list[str]) -> Table:
    t = Table(show_lines=False, pad_edge=False, header_style="bold")
    t.add_column("#", justify="right")
    t.add_column("model (domain)", overflow="fold", min_width=14)
    t.add_column("fit", justify="right")
    for name in signals:
        t.add_column(COLUMNS.get(name, (name,))[0], justify="right")
    t.add_column("risk")
    for c in r.ranking:
        t.add_row(str(c.rank), f"{escape(c.model)}\n[dim]{escape(c.domain)}[/]", "—" if c.fit is None
                  else f"{c.fit:.3f}",
                  *(_signal_cell(c, n) for n in signals), _risk(c))
    return t


def _layouts(r: Ranking) -> list[tuple[str, list[str]]]:
    basis = rule_signals(r)
    full = list(FULL) + [n for n in basis if n not in FULL]
    compact = basis[:2] + (["gain"] if r.mode == "labels" and "gain" not in basis[:2] else [])
    return [("full", full), ("compact", compact)]


def _blocks(r: Ranking, console: Console) -> None:
    for c in r.ranking:
        console.print(f"[bold]#{c.rank}[/] {escape(c.model)} [dim]({escape(c.domain)})[/]", highlight=False)
        fit = "—" if c.fit is None else f"{c.fit:.3f}"
        console.print(f"   fit {fit} · risk {_risk(c, sep=' ')}", highlight=False)
        names = [n for n in _layouts(r)[1][1] if n in c.signals]
        if names:
            cells = [f"{n} {_signal_cell(c, n)}" + (" %" if COLUMNS.get(n, ("", False))[1]
                                                    and c.signals[n].value is not None
                                                    else "") for n in names]
            console.print("   " + " · ".join(cells), highlight=False)


#: The model column may fold down to this many characters before a narrower layout is chosen.
MODEL_MIN = 16


def _fits(r: Ranking, table: Table, console: Console) -> bool:
    """Does the table fit ``console.width`` without cutting a number (the model column may fold)?"""
    natural = console.measure(table, options=console.options.update_width(100_000)).maximum
    model = max(cell_len(x) for c in r.ranking for x in (c.model, c.domain, "model (domain)"))
    return natural - max(0, model - MODEL_MIN) <= console.width


def render_table(r: Ranking, console: Console | None = None) -> str:
    """Print the sample line, the ranking in the widest layout that fits ``console.width``, the
    reasons, failures, exclusions, skipped files and a legend. Returns the layout used."""
    console = console or Console(emoji=False)
    s = r.sample
    classes = f", {s.n_classes} class{'es' if s.n_classes != 1 else ''}" if s.n_classes else ""
    console.print(f"[bold]Sample[/]: {s.n_images} images from {escape(s.path)} — {escape(s.labels_note)}{classes}; "
                  f"{len(s.skipped)} skipped.  Ranking mode: [bold]{r.mode}[/]", highlight=False)
    layout = "none"
    if r.ranking:
        for name, signals in _layouts(r):
            table = _table(r, signals)
            if _fits(r, table, console):
                console.print(table)
                layout = name
                break
        else:
            layout, signals = "blocks", _layouts(r)[1][1]
            _blocks(r, console)
    _notes(r, console)
    if r.ranking:
        shown = "" if layout == "full" else (f" Narrow terminal ({console.width} columns): fewer columns; "
                                             "a wider terminal, --format json or --format html show every signal.")
        console.print(f"[dim]{escape(_legend(r, signals))}{shown}[/]", highlight=False)
    return layout


#: What each column means (the legend names only the columns shown).
MEANING = {"probe": "balanced accuracy (%) ± sd over folds", "gain": "probe − random-weights control, points ± sd",
           "knn": "cosine 5-NN balanced accuracy (%)", "control": "the probe on random weights (%)",
           "logme": "LogME, higher is better",
           "early_shift": "early_shift, early-layer statistics against the pretraining data's, lower = closer",
           "frechet": "frechet / tr(Σ_ref) on pooled features, lower = closer",
           "prior": "ImageNet top-1 of the catalog", "params": "millions of parameters, from the catalog or counted"}


def _meaning(name: str) -> str:
    """The legend's words for a column: ours, else the signal's registered description."""
    from .signals import SIGNALS

    if name in MEANING:
        return MEANING[name]
    sig = SIGNALS.get(name)
    return sig.description if sig is not None and sig.description else "see --format json"


def static_rule_note(r: Ranking) -> str | None:
    """A sentence for a run whose fit rule reads no image (every term a catalog fact or the
    network's size, :data:`proximity.signals.prior.STATIC`) and that ranked something; None otherwise."""
    from .signals.prior import STATIC

    terms = [t[0] for t in r.fit_rule.get("terms", [])]
    if not r.ranking or not terms or not set(terms) <= STATIC:
        return None
    what = " and ".join({"params": "parameter count", "prior": "ImageNet top-1"}.get(t, t) for t in terms)
    return (f"The {r.mode} fit rule '{r.fit_rule.get('name', '')}' reads no image: it orders the candidates by "
            f"{what}, chosen on the benchmark, where no signal measured on the images ranked as well across "
            "architecture families. It says nothing of your images' domain, and within one family it orders by "
            "size alone; equal fits fall to early_shift (closer first; weak within a family on the benchmark), "
            "then catalog order. README, 'When to trust the label-free ranking'.")


def _legend(r: Ranking, signals: list[str]) -> str:
    cols = [f"{COLUMNS.get(n, (n,))[0].replace(' %', '').replace(' M', '')}: {_meaning(n)}" for n in signals]
    rule = r.fit_rule.get("name")
    return "; ".join(cols + ([f"fit: rule '{rule}'"] if rule else []) + [
        "risk: P(fine-tuning ends below training from scratch) with its 90 % interval, calibrated on the benchmark's "
        "targets only (README). --format json for every signal with its reason."])


def _notes(r: Ranking, console: Console) -> None:
    notes = []
    for c in r.ranking:
        notes += [f"#{c.rank} no {n}: {v.reason}" for n, v in c.signals.items()
                  if v.value is None and n in ("early_shift", "probe", "gain")
                  and "no labels" not in v.reason and not v.reason.startswith("not run: labels switched off")]
    for note in dict.fromkeys(notes):
        console.print(f"[dim]{escape(note)}[/]", highlight=False)
    for c in r.ranking:
        console.print(f"[dim]#{c.rank} risk:[/] {escape(c.risk_reason)}", highlight=False)
    static = static_rule_note(r)
    if static:
        console.print(f"[yellow]{escape(static)}[/]", highlight=False)
    if r.ranking and all(c.cached for c in r.ranking):
        console.print("[dim]evidence read from the cache (--no-cache recomputes it)[/]")
    for who, stage, error in failure_groups(r):
        console.print(f"[red]failed[/] {escape(who)} at {stage}: {escape(error)}", highlight=False)
    if r.excluded:
        kinds = exclusion_kinds(r.excluded)
        console.print(f"[dim]{len(r.excluded)} catalog entr{'y' if len(r.excluded) == 1 else 'ies'} set aside: "
                      + ", ".join(f"{n} {k}"
                                  for k, n in kinds.items()) + " (--format json lists each with its reason)[/]",
                      highlight=False)
    s = r.sample
    if s.skipped:
        shown = ", ".join(f"{x['path']} ({x['reason']})" for x in s.skipped[:5])
        more = f" and {len(s.skipped) - 5} more" if len(s.skipped) > 5 else ""
        console.print(f"[yellow]skipped[/] {escape(shown)}{more}", highlight=False)


def failure_groups(r: Ranking) -> list[tuple[str, str, str]]:
    """(who, stage, error): the same reason for many models is said once, with the models' own
    names elided from it; a reason given once is kept whole."""
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for f in r.failed:
        generic = re.sub(r"'(?:hf-hub|timm|local-dir):[^']*'", "'…'", f.error.replace(f"'{f.model}'", "'…'"))
        groups.setdefault((f.stage, generic), []).append((f.model, f.error))
    out = []
    for (stage, generic), members in groups.items():
        if len(members) == 1:
            out.append((members[0][0], stage, members[0][1]))
        else:
            out.append((f"{len(members)} backbones ({', '.join(m for m, _ in members)})", stage, generic))
    return out


def exclusion_kinds(excluded: Sequence[Mapping[str, str]]) -> dict[str, int]:
    """How many catalog entries were set aside, by kind (in the terminal's words)."""
    kinds: dict[str, int] = {}
    for x in excluded:
        label = Exclusion.from_dict(x).label
        kinds[label] = kinds.get(label, 0) + 1
    return kinds
