"""The typed values that cross module boundaries (proximity.types): a failure's stage decided in
one place, exclusions with their kind as data (and read back from a saved result), signal needs
parsed once."""

import json

import numpy as np
import pytest

from proximity.catalog import CatalogEntry
from proximity.errors import (ForwardError, GatedModelError, HubUnavailableError, ModelNotFoundError, NumericalError,
                              UnsupportedModelError)
from proximity.filters import Filters
from proximity.report import Ranking, SampleSummary
from proximity.types import EXCLUSION_KINDS, Exclusion, Failure, SignalNeeds


@pytest.mark.parametrize("exc, phase, stage", [
    (HubUnavailableError("m", "timeout"), "load", "fetch"),        # a Hub error is 'fetch' whenever it happens
    (GatedModelError("m"), "load", "fetch"),
    (ModelNotFoundError("m", "no such repo"), "fetch", "fetch"),
    (UnsupportedModelError("m", "remote code"), "fetch", "load"),  # found while resolving: still a 'load' failure
    (ForwardError("m", RuntimeError("shape")), "load", "forward"),
    (RuntimeError("boom"), "fetch", "fetch"),                      # anything else: the phase the run was in
    (RuntimeError("boom"), "load", "load"),
    (NumericalError("nan", float("nan")), "signal", "signal"),
])
def test_a_failure_stage_is_decided_in_one_place(exc, phase, stage):
    assert Failure.from_exception("m", exc, phase).stage == stage


def test_a_failure_is_one_line_and_a_forward_error_says_its_cause():
    f = Failure.from_exception("m", ValueError("first line\nsecond line"), "load")
    assert f.error == "ValueError: first line" and f.to_dict() == {"model": "m", "stage": "load", "error": f.error}
    cause = NumericalError("m: non-finite pooled features for 2 image(s)", "nan/inf")
    fwd = Failure.from_exception("m", ForwardError("m", cause), "load")
    assert fwd.stage == "forward" and fwd.error == str(cause).splitlines()[0]


def _entry(**kw):
    return CatalogEntry(id=kw.pop("id", "e"), source="timm:resnet18", **kw)


@pytest.mark.parametrize("filters, entry, kind", [
    (Filters(), _entry(loadable=False, load_reason="needs remote code"), "not-loadable"),
    (Filters(domains=("natural",)), _entry(domains=("medical-radiology",)), "domain"),
    (Filters(domains=("natural",)), _entry(), "domain"),
    (Filters(max_params=5.0), _entry(), "params-unknown"),
    (Filters(max_params=5.0), _entry(params_m=11.7), "max-params"),
    (Filters(licenses=("mit",)), _entry(license="apache-2.0"), "license"),
    (Filters(licenses=("mit",)), _entry(), "license"),
    (Filters(), _entry(gated=True), "gated"),
])
def test_every_exclusion_kind_survives_a_saved_result(filters, entry, kind):
    """Each kind the filters give reads back with the same kind from the JSON, which keeps only
    ``{model, reason}`` (schema 2, unchanged)."""
    x = filters.exclusion(entry)
    assert x is not None and x.kind == kind and filters.why_excluded(entry) == x.reason
    assert dict(x) == x.to_dict() == {"model": "e", "reason": x.reason} and x["reason"] == x.reason
    r = Ranking(sample=SampleSummary("p", 1, 1, [], "none", "", {}), ranking=[], failed=[], mode="label-free",
                excluded=[x])
    back = Ranking.from_dict(json.loads(r.to_json())).excluded[0]
    assert json.loads(r.to_json())["excluded"] == [{"model": "e", "reason": x.reason}]
    assert back == x and back.label == EXCLUSION_KINDS[kind][0]


def test_an_unknown_exclusion_reason_reads_back_as_other():
    x = Exclusion.from_dict({"model": "m", "reason": "set aside by a future version"})
    assert x.kind == "other" and x.label == "set aside by a future version"
    with pytest.raises(ValueError, match="unknown exclusion kind"):
        Exclusion("m", "bogus", "why")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        x["kind"]


def test_signal_needs_are_parsed_once_and_checked():
    from proximity.signals import SIGNALS, register_signal

    for s in SIGNALS.values():      # every registered signal's needs parse
        assert isinstance(s.requirements, SignalNeeds)
    assert SIGNALS["probe"].requirements.labels and SIGNALS["prior"].requirements.facts
    with pytest.raises(ValueError, match="unknown signal need"):
        SignalNeeds.parse(("labels", "lables"))
    with pytest.raises(ValueError, match="unknown signal need"):
        register_signal("test_typo_need", higher_is_better=True, needs=("batchnorm",))(lambda ctx: (0.0, None, ""))
    assert "test_typo_need" not in SIGNALS


@pytest.mark.parametrize("needs, facts, reference, batchnorm, expected", [
    ((), False, False, False, True),
    (("labels", "control"), False, False, None, True),       # run-time needs do not count for an entry
    (("facts",), False, True, True, False),
    (("facts",), True, False, None, True),
    (("reference",), True, False, True, False),
    (("reference",), True, True, None, True),
    (("batchnorm|reference",), False, False, False, False),
    (("batchnorm|reference",), False, False, None, None),   # not known offline
    (("batchnorm|reference",), False, False, True, True),
    (("batchnorm|reference",), False, True, None, True),
])
def test_what_an_entry_supports(needs, facts, reference, batchnorm, expected):
    assert SignalNeeds.parse(needs).supported(facts=facts, reference=reference, batchnorm=batchnorm) is expected


def test_folds_used_is_the_probe_splits_count():
    from proximity.evidence import Evidence
    from proximity.signals import SignalContext, compute_signals
    from proximity.signals.probe import folds_used

    rng = np.random.default_rng(0)
    ev = Evidence(features=rng.normal(size=(12, 4)).astype(np.float32), layer_names=[], image_means=[], image_vars=[],
                  source_means=[], source_vars=[], seconds=0.0)
    ctx = SignalContext(evidence=ev, entry=_entry(), labels=np.repeat([0, 1], 6), folds=5)
    assert folds_used(ctx) is None
    compute_signals(ctx, ["probe"])
    assert folds_used(ctx) == 5
    small = SignalContext(evidence=ev, entry=_entry(), labels=np.array([0] * 9 + [1] * 3), folds=5)
    compute_signals(small, ["knn"])
    assert folds_used(small) == 3                  # k = min(folds, smallest class)
