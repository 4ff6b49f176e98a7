"""The Ray executor on a local Ray cluster (loopback): the same ranking as the serial run, a
failed task is a failed candidate and the run goes on. Skipped, saying why, without Ray."""

import os

import pytest

import proximity
from proximity.errors import InvalidParameterError

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'proximity[ray]'): "
                                        "the Ray executor is untested")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster on the loopback interface, two CPUs, no dashboard."""
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    yield ray
    ray.shutdown()


def _models(backbones):
    return [f"local-dir:{backbones['A']}", f"local-dir:{backbones['B']}", "timm:test_resnet.no_such_tag"]


def _view(r):
    return [(c.model, c.rank, c.fit, {n: (v.value, v.sd, v.reason) for n, v in c.signals.items()}) for c in r.ranking]


def test_ray_ranks_identically_to_the_serial_run(cluster, target_dir, backbones, fresh_cache):
    models = _models(backbones)
    serial = proximity.rank(target_dir, models=models, sample=24, folds=3, use_cache=False)
    on_ray = proximity.rank(target_dir, models=models, sample=24, folds=3, use_cache=False, executor="ray")
    assert on_ray.settings["executor"] == "ray" and ray.is_initialized()        # the test's cluster is left running
    assert _view(on_ray) == _view(serial)
    assert [f.to_dict() for f in on_ray.failed] == [f.to_dict() for f in serial.failed]
    assert on_ray.failed[0].stage == "fetch"                                     # failures as in a serial run
    # the evidence cache works from the workers: a second Ray run reads what they wrote
    first = proximity.rank(target_dir, models=models[:2], sample=24, folds=3, executor="ray")
    again = proximity.rank(target_dir, models=models[:2], sample=24, folds=3, executor="ray")
    assert not any(c.cached for c in first.ranking) and all(c.cached for c in again.ranking)
    assert _view(again) == _view(first)


def test_the_cascade_screens_on_ray_as_in_one_process(cluster, target_dir, backbones, fresh_cache):
    models = _models(backbones)[:2]
    serial = proximity.rank(target_dir, models=models, sample=24, folds=3, use_cache=False, shortlist=1)
    on_ray = proximity.rank(target_dir, models=models, sample=24, folds=3, use_cache=False, shortlist=1,
                            executor="ray")
    assert [c.screened for c in on_ray.ranking] == [False, True]
    assert _view(on_ray) == _view(serial) and [c.screen for c in on_ray.ranking] == [c.screen for c in serial.ranking]


def test_a_task_that_dies_is_a_failed_candidate_and_the_run_goes_on(cluster, target_dir, backbones, fresh_cache,
                                                                     monkeypatch):
    from proximity import executors

    real = executors._score_task
    doomed = f"local-dir:{backbones['B']}"

    def dying(entry, *args):
        if entry.id == doomed:
            os._exit(3)                              # the worker process dies mid-task
        return real(entry, *args)

    monkeypatch.setattr(executors, "_score_task", dying)
    r = proximity.rank(target_dir, models=_models(backbones)[:2], sample=24, folds=3, use_cache=False,
                       executor="ray")
    assert [c.model for c in r.ranking] == [f"local-dir:{backbones['A']}"]
    (fail,) = r.failed
    assert fail.model == doomed and fail.stage == "forward" and fail.error.startswith("Ray task failed")


def test_address_needs_the_ray_executor():
    with pytest.raises(InvalidParameterError, match="'address' parameter of rank"):
        proximity.rank(".", models=["timm:x"], address="127.0.0.1:6379")
