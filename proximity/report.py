"""Results: documented dataclasses and their JSON (schema_version 1), CSV and terminal table.

JSON contract (``schema_version: 1``)::

    {"schema_version": 1, "proximity_version": "0.1.0", "mode": "labels" | "label-free",
     "sample": {"path", "n_images", "n_found", "n_skipped", "skipped": [{"path", "reason"}],
                "labels", "labels_note", "n_classes", "classes": {name: count}},
     "ranking": [{"rank", "model", "domain", "fit", "risk", "risk_interval": [low, high] | null,
                  "risk_band", "risk_reason",
                  "signals": {name: {"value", "sd", "higher_is_better", "reason"}},
                  "timings": {"evidence_s", "control_s", "signals_s"}, "cached": bool}],
     "failed": [{"model", "stage": "fetch" | "load" | "forward" | "signal", "error"}],
     "excluded": [{"model", "reason"}],       # catalog entries set aside (filters, not loadable)
     "settings": {...}}

``model`` is the catalog id, or the ``--model`` string exactly as given. CSV has one row per
ranked model with ``signal.<name>`` and ``signal.<name>.sd`` columns; failed models follow with
their ``error``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .signals import SignalValue

SCHEMA_VERSION = 2
Stage = Literal["fetch", "load", "forward", "signal"]


@dataclass(frozen=True)
class SampleSummary:
    path: str
    n_images: int
    n_found: int
    skipped: list[dict[str, str]]
    labels: str
    labels_note: str
    classes: dict[str, int]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "n_images": self.n_images, "n_found": self.n_found,
                "n_skipped": len(self.skipped), "skipped": self.skipped, "labels": self.labels,
                "labels_note": self.labels_note, "n_classes": self.n_classes, "classes": self.classes}


@dataclass
class Candidate:
    """One ranked backbone with its evidence."""

    rank: int
    model: str
    domain: str
    fit: float | None
    risk: float | None
    risk_band: str
    risk_reason: str
    signals: dict[str, SignalValue]
    timings: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    risk_interval: tuple[float, float] | None = None     # 90 % interval of the calibrated risk
    fit_basis: list[str] = field(default_factory=list)   # the signals this candidate's fit used

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "model": self.model, "domain": self.domain, "fit": self.fit,
                "risk": self.risk, "risk_interval": None if self.risk_interval is None else list(self.risk_interval),
                "risk_band": self.risk_band, "risk_reason": self.risk_reason, "fit_basis": list(self.fit_basis),
                "signals": {k: v.to_dict() for k, v in self.signals.items()},
                "timings": {k: round(v, 4) for k, v in self.timings.items()}, "cached": self.cached}


@dataclass(frozen=True)
class Failure:
    """A backbone that could not be ranked, and at which stage."""

    model: str
    stage: Stage
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"model": self.model, "stage": self.stage, "error": self.error}


@dataclass
class Ranking:
    """The outcome of :func:`proximity.rank`: candidates best first, failures, the sample."""

    sample: SampleSummary
    ranking: list[Candidate]
    failed: list[Failure]
    mode: str
    settings: dict[str, Any] = field(default_factory=dict)
    excluded: list[dict[str, str]] = field(default_factory=list)
    fit_rule: dict[str, Any] = field(default_factory=dict)   # the rule that produced the fits

    @property
    def best(self) -> Candidate | None:
        return self.ranking[0] if self.ranking else None

    def __getitem__(self, i: int) -> Candidate:
        return self.ranking[i]

    def __len__(self) -> int:
        return len(self.ranking)

    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        return {"schema_version": SCHEMA_VERSION, "proximity_version": __version__, "mode": self.mode,
                "sample": self.sample.to_dict(), "ranking": [c.to_dict() for c in self.ranking],
                "failed": [f.to_dict() for f in self.failed], "excluded": self.excluded, "settings": self.settings,
                "fit_rule": self.fit_rule}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows (one per candidate, then one per failure) as used by CSV and ``to_frame``."""
        names = sorted({n for c in self.ranking for n in c.signals})
        rows = []
        for c in self.ranking:
            lo, hi = c.risk_interval or (None, None)
            row = {"rank": c.rank, "model": c.model, "domain": c.domain, "fit": c.fit, "risk": c.risk,
                   "risk_low": lo, "risk_high": hi, "risk_band": c.risk_band, "risk_reason": c.risk_reason, "error": ""}
            for n in names:
                s = c.signals.get(n)
                row[f"signal.{n}"] = s.value if s else None
                row[f"signal.{n}.sd"] = s.sd if s else None
            rows.append(row)
        for f in self.failed:
            rows.append({"rank": None, "model": f.model, "domain": "", "fit": None, "risk": None,
                         "risk_low": None, "risk_high": None, "risk_band": "unknown", "risk_reason": "", "error": f"{f.stage}: {f.error}",
                         **{k: None for n in names for k in (f"signal.{n}", f"signal.{n}.sd")}})
        return rows

    def to_csv(self) -> str:
        rows = self.rows()
        buf = io.StringIO()
        fields = list(rows[0]) if rows else ["rank", "model", "domain", "fit", "risk", "risk_low", "risk_high", "risk_band", "risk_reason", "error"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if v is None else v for k, v in r.items()})
        return buf.getvalue()

    def to_frame(self):
        """The rows as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover
            raise ImportError("Ranking.to_frame() needs pandas: pip install pandas") from None
        return pd.DataFrame(self.rows())


def _cell(s: SignalValue | None, pct: bool = False, digits: int = 2) -> str:
    if s is None or s.value is None:
        return "—"
    if pct:
        sd = f"±{s.sd * 100:.1f}" if s.sd is not None else ""
        return f"{s.value * 100:.1f}{sd}"
    sd = f"±{s.sd:.{digits}f}" if s.sd is not None else ""
    return f"{s.value:.{digits}f}{sd}"


def render_table(r: Ranking, console=None) -> None:
    """Print the Rich table (rank, model and domain, fit, key signals, risk), notes and failures."""
    from rich.console import Console
    from rich.table import Table

    from rich.markup import escape

    console = console or Console()
    s = r.sample
    console.print(f"[bold]Sample[/]: {s.n_images} images from {escape(s.path)} — {escape(s.labels_note)}"
                  + (f", {s.n_classes} classes" if s.n_classes else "") + f"; {len(s.skipped)} skipped.  "
                  f"Ranking mode: [bold]{r.mode}[/]", highlight=False)
    t = Table(show_lines=False, pad_edge=False, header_style="bold")
    t.add_column("#", justify="right")
    t.add_column("model (domain)", overflow="fold", min_width=14)
    for col in ("fit", "probe %", "gain %", "logme", "shift", "fd", "prior"):
        t.add_column(col, justify="right")
    t.add_column("risk")
    colour = {"low": "green", "medium": "yellow", "high": "red", "unknown": "dim"}
    notes = []
    for c in r.ranking:
        risk = f"[{colour[c.risk_band]}]{c.risk_band}" + (f" {c.risk:.2f}" if c.risk is not None else "") + "[/]"
        if c.risk_interval is not None:
            risk += f"\n[dim]{c.risk_interval[0]:.2f}–{c.risk_interval[1]:.2f}[/]"
        t.add_row(str(c.rank), f"{escape(c.model)}\n[dim]{escape(c.domain)}[/]", "—" if c.fit is None else f"{c.fit:.3f}",
                  _cell(c.signals.get("probe"), pct=True), _cell(c.signals.get("gain"), pct=True),
                  _cell(c.signals.get("logme")), _cell(c.signals.get("early_shift")),
                  _cell(c.signals.get("frechet"), digits=3), _cell(c.signals.get("prior"), digits=1), risk)
        notes += [f"#{c.rank} no {n}: {v.reason}" for n, v in c.signals.items()
                  if v.value is None and n in ("early_shift", "probe", "gain") and "no labels" not in v.reason]
    if r.ranking:
        console.print(t)
    for note in dict.fromkeys(notes):
        console.print(f"[dim]{escape(note)}[/]", highlight=False)
    for c in r.ranking:
        console.print(f"[dim]#{c.rank} risk:[/] {escape(c.risk_reason)}", highlight=False)
    if r.ranking and all(c.cached for c in r.ranking):
        console.print("[dim]evidence read from the cache (--no-cache recomputes it)[/]")
    groups: dict[tuple[str, str], list[str]] = {}
    for f in r.failed:  # the same reason for many models is said once
        generic = re.sub(r"'(?:hf-hub|timm|local-dir):[^']*'", "'…'", f.error.replace(f"'{f.model}'", "'…'"))
        groups.setdefault((f.stage, generic), []).append(f.model)
    for (stage, error), models in groups.items():
        who = models[0] if len(models) == 1 else f"{len(models)} backbones ({', '.join(models)})"
        console.print(f"[red]failed[/] {escape(who)} at {stage}: {escape(error)}", highlight=False)
    if r.excluded:
        kinds: dict[str, int] = {}
        for x in r.excluded:
            why = x["reason"]
            key = ("not loadable" if why.startswith("not loadable") else "gated (--include-gated)" if why.startswith("gated")
                   else "outside --domain" if why.startswith("domain") else "of unknown size" if why.startswith("parameter count")
                   else "over --max-params" if "--max-params" in why
                   else "other license" if why.startswith("license") else why)
            kinds[key] = kinds.get(key, 0) + 1
        console.print(f"[dim]{len(r.excluded)} catalog entries set aside: "
                      + ", ".join(f"{n} {k}" for k, n in kinds.items()) + " (--format json lists each with its reason)[/]",
                      highlight=False)
    if s.skipped:
        shown = ", ".join(f"{x['path']} ({x['reason']})" for x in s.skipped[:5])
        more = f" and {len(s.skipped) - 5} more" if len(s.skipped) > 5 else ""
        console.print(f"[yellow]skipped[/] {escape(shown)}{more}", highlight=False)
    if not r.ranking:
        return
    console.print("[dim]probe/gain: balanced accuracy (%) ± sd over folds; logme: higher is better; shift: "
                  "early_shift, fd: frechet / tr(Σ_ref) (lower = closer to the pretraining domain); risk: "
                  "P(fine-tuning ends below training from scratch) with its 90 % interval, calibrated on the benchmark's "
                  "targets only (README). --format json for every signal with its reason.[/]")
