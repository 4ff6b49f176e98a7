"""Where candidates are scored: in this process, or one Ray task per backbone on a Ray cluster.

Both executors run :func:`proximity.scoring.score_candidate` and return, in the candidates'
order, a :class:`~proximity.scoring.Scored` or a :class:`~proximity.report.Failure` for each;
the results are the same (the ranking is made from them by the caller, identically).

**serial** — one candidate after the other; the random-weights control of an architecture is
computed once and reused by the next candidate that has it (:class:`~proximity.controls.ControlPool`).

**ray** (``pip install 'proximity[ray]'``, ``--executor ray [--address ADDR]``) — candidates
whose signals are cached are answered here, without Ray. The others are resolved here (cheap: no
weights), their random-weights controls computed by one task per (architecture, input
configuration), and each candidate scored by one task that receives its control — so a control
is computed once however many candidates share it. The decoded sample goes to the cluster once
(``ray.put``). A task that fails — an exception, a worker that dies, a node lost — is that
candidate's failure (stage ``forward``, the error in one line) and the run goes on. With
``--device cuda`` (or ``auto`` on a cluster with GPUs) each task asks Ray for one GPU.
Workers use their own evidence cache (``PROXIMITY_CACHE_DIR`` set here is passed on to them:
point it at shared storage so that every node reads and writes the same one).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

from .types import Failure

logger = logging.getLogger(__name__)


class SerialExecutor:
    """Score candidates one after the other in this process."""

    name = "serial"

    def __init__(self) -> None:
        from .controls import ControlPool

        self.controls = ControlPool()

    def run(self, entries: Sequence[Any], sample, cfg, *, labels_off: bool = False,
            progress: Callable[[str, int, int], None] | None = None) -> list:
        from .scoring import score_candidate

        return [score_candidate(e, sample, cfg, labels_off=labels_off, controls=self.controls, progress=progress)
                for e in entries]

    def close(self) -> None:
        pass


def check_available(executor: str) -> None:
    """Raise InvalidParameterError when ``executor`` cannot run here (Ray not installed) — said
    before anything is decoded; imports nothing."""
    import importlib.util

    if executor == "ray" and importlib.util.find_spec("ray") is None:
        from .errors import InvalidParameterError

        raise InvalidParameterError("executor", "rank", "'serial' here: Ray is not installed "
                                    "(pip install 'proximity[ray]')", "ray")


def _ray():
    check_available("ray")
    import ray

    return ray


def _worker_env() -> dict[str, str]:
    keep = ("PROXIMITY_CACHE_DIR", "PROXIMITY_DATA_DIR", "HF_HOME", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_TOKEN")
    return {k: os.environ[k] for k in keep if k in os.environ}


def _control_task(spec, sample, cfg):
    """Ray task: the random-weights control evidence of ``spec`` on ``sample``."""
    from .backbones import resolve_device
    from .controls import ControlPool

    return ControlPool().get(spec, sample, device=resolve_device(cfg.device), batch_size=cfg.batch_size,
                             seed=cfg.seed, use_cache=cfg.use_cache, precision=cfg.precision)


def _score_task(entry, sample, cfg, labels_off, control: list):
    """Ray task: one candidate, given ``[ObjectRef]`` of its control evidence (``[]``: none computed
    ahead). A control task that failed makes the control absent with its error, as in a serial run."""
    import ray

    from .controls import ControlPool
    from .scoring import score_candidate

    given = None
    if control:
        try:
            given = ray.get(control[0])
        except Exception as exc:
            cause = getattr(exc, "cause", None)       # a Ray task error carries the task's own exception
            given = cause if isinstance(cause, Exception) else exc
    return score_candidate(entry, sample, cfg, labels_off=labels_off, controls=ControlPool(given))


class RayExecutor:
    """One Ray task per backbone (module docstring)."""

    name = "ray"

    def __init__(self, address: str | None = None, **init: Any) -> None:
        ray = _ray()
        self._started = False
        if not ray.is_initialized():
            ray.init(address=address, runtime_env={"env_vars": _worker_env()}, log_to_driver=False, **init)
            self._started = True
        self.ray = ray

    def _gpus(self, cfg) -> float:
        if cfg.device == "cuda":
            return 1.0
        if cfg.device == "auto":
            return 1.0 if self.ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        return 0.0

    def run(self, entries: Sequence[Any], sample, cfg, *, labels_off: bool = False,
            progress: Callable[[str, int, int], None] | None = None) -> list:
        from .scoring import cached_result

        out: list = [cached_result(e, sample, cfg, labels_off=labels_off) for e in entries]
        todo = [i for i, r in enumerate(out) if r is None]
        for i, r in enumerate(out):
            if r is not None and progress is not None:
                progress(entries[i].id, sample.n, sample.n)
        if not todo:
            return out
        ray = self.ray
        gpus = self._gpus(cfg)
        sample_ref = ray.put(sample)
        controls = self._controls([entries[i] for i in todo], sample, sample_ref, cfg, gpus, out, todo)
        score = ray.remote(num_gpus=gpus, max_retries=0)(_score_task)
        futures = {i: score.remote(entries[i], sample_ref, cfg, labels_off, [controls[i]] if i in controls else [])
                   for i in todo if not isinstance(out[i], Failure)}
        for i, fut in futures.items():
            try:
                out[i] = ray.get(fut)
            except Exception as exc:   # the task failed, its worker died, or its node was lost
                out[i] = Failure(entries[i].id, "forward", f"Ray task failed: {_one_line(exc)}")
                logger.warning("%s: %s", entries[i].id, out[i].error)
            if progress is not None:
                progress(entries[i].id, sample.n, sample.n)
        return out

    def _controls(self, entries, sample, sample_ref, cfg, gpus: float, out: list, todo: list[int]):
        """Resolve the candidates here and start one control task per control identity:
        {candidate position: ObjectRef of its control evidence}; a candidate that cannot be
        resolved is a failure here (as its own task would have reported it)."""
        from . import cache
        from .backbones import resolve_spec
        from .evidence import evidence_ingredients
        from .errors import one_line
        from .scoring import control_sample

        refs: dict[int, Any] = {}
        if not cfg.control:
            return refs
        _, sub = control_sample(sample, cfg)
        sub_ref = sample_ref if sub is sample else self.ray.put(sub)
        task = self.ray.remote(num_gpus=gpus, max_retries=0)(_control_task)
        by_key: dict[str, Any] = {}
        for i, entry in zip(todo, entries, strict=True):
            try:
                spec = resolve_spec(entry)
                key = cache.evidence_key(evidence_ingredients(spec, sub, pretrained=False, seed=cfg.seed))
            except Exception as exc:     # the candidate's own task reports it with its stage
                logger.debug("%s: not resolved here (%s)", entry.id, one_line(exc))
                out[i] = Failure.from_exception(entry.id, exc, "fetch")
                continue
            if key not in by_key:
                by_key[key] = task.remote(spec, sub_ref, cfg)
            refs[i] = by_key[key]
        return refs

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


def _one_line(exc: BaseException) -> str:
    from .errors import one_line

    cause = getattr(exc, "cause", None)
    return one_line(cause if isinstance(cause, BaseException) else exc)


def make_executor(cfg):
    """The executor ``cfg.executor`` names."""
    if cfg.executor == "ray":
        return RayExecutor(cfg.address)
    return SerialExecutor()
