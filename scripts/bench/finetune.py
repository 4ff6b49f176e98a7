"""Ground truth by real training: fine-tune every benchmark backbone on every target, and train
each architecture from scratch, resumably (one JSON line per finished job).

    python scripts/bench/finetune.py [--out DIR] [--quick] [--targets T ...] [--backbones B ...] [--max-jobs N]
    python scripts/bench/finetune.py --tier zoo --store scripts/bench/results/groundtruth-zoo.jsonl [--targets ...]

Protocol (per target, fixed stratified split 50 % train / 20 % val / 30 % test, seeded):
all layers trained, AdamW (weight decay 0.05), backbone learning rate = head rate / 10, one
warm-up epoch then cosine decay, at most 30 epochs, early stopping on validation accuracy
(patience 5 after at least 10 epochs, best epoch restored), random horizontal flips. Stage 1 sweeps the head
learning rate over (3e-4, 1e-3, 3e-3) with seed 0; stage 2 repeats the best one (by validation accuracy) with
seeds 1 and 2. From scratch: the same architecture with timm's initialisation, one learning rate
for all layers, the same sweep and seeds. A (backbone, target) pair is *negative transfer* when
the mean test accuracy of its 3 seeds is below the from-scratch mean.

Second tier (``--tier zoo``): the real offline zoo (``proximity zoo build``), each member as
proximity builds it (truncation included) with a linear head, fine-tuned and trained from scratch
at the targets' own **64 px** instead of its native 224–260 px (a VGG16 at 240 px trains at about
1 img/s here), with its own normalisation — the same protocol otherwise. At 64 px it still costs
about 85 s per training job for a VGG16 on these 2 cores (about 6 CPU-hours for the two trunks'
240 jobs), so the EfficientNets ran on a lent GPU machine (``device_zoo.sh``) and the VGG16 trunks
on CPUs, resumably, target by target (each record names its device). The results page reports it apart.

Protocol 2 (``--protocol 2``; targets of ``targets_v2.py``, backbones of ``pretrain.py
--protocol 2`` in ``DIR/v2/backbones``, records in ``results/v2/groundtruth.jsonl``): the user's
images of a target are split 70 % train / 30 % val (stratified, at least one per class in val)
and the accuracy is measured on the target's separate held-out test set; stage 2 repeats the
best learning rate with seeds 1–4 (the noise ceiling compares seeds 1–2 with seeds 3–4). The
rest is as above, except that targets whose class a mirror image changes (orientations,
letters, digits: ``TargetV2.flip_ok``) are trained without flips. Five from-scratch architectures: the four
families and the generalist's.
Protocol 3 (``--protocol 3``): protocol 2 exactly — its backbones, recipe and seeds — on the
twelve fresh test targets of ``targets_v3.py``, records in ``results/v3/groundtruth.jsonl``;
protocol 4 (``--protocol 4``) the same on ``targets_v4.py``'s twelve, in ``results/v4/groundtruth.jsonl``.
Jobs run target by target (a target's ground truth completes before the next one starts), and
``--shard I/N`` lets N processes share one store (jobs split by (model, target) pair).

Jobs are keyed by (kind, model, target, lr, seed, protocol version); a job already in
``DIR/groundtruth/jobs.jsonl`` is skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import zlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

if not __package__:  # run as a script (python scripts/bench/…): its siblings are scripts.bench.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "scripts.bench"
from . import pretrain  # noqa: E402
from . import targets_v2, targets_v3, targets_v4  # noqa: E402
from .targets import TARGETS, make_target  # noqa: E402

PROTOCOL = 1
LRS = (3e-4, 1e-3, 3e-3)
SEEDS_STAGE2 = {1: (1, 2), 2: (1, 2, 3, 4), 3: (1, 2, 3, 4), 4: (1, 2, 3, 4)}
RESULTS_V2 = Path(__file__).parent / "results" / "v2"
RESULTS_V3 = Path(__file__).parent / "results" / "v3"
RESULTS_V4 = Path(__file__).parent / "results" / "v4"
FRESH_MODULES = {3: targets_v3, 4: targets_v4}     # protocols whose targets are a fresh test set


@dataclass(frozen=True)
class Job:
    kind: str            # "finetune" | "scratch"
    model: str           # backbone id (finetune) or architecture (scratch)
    target: str
    lr: float
    seed: int
    epochs: int = 30
    patience: int = 5
    min_epochs: int = 10
    n_per_class: int | None = None   # None = the target's own size (quick mode shrinks it)
    tier: str = "bench"              # "bench" (pretrain.py backbones) | "zoo" (the real offline zoo)
    protocol: int = PROTOCOL

    def key(self) -> str:
        d = asdict(self)
        if d["tier"] == "bench":     # records written before the zoo tier existed have no "tier"
            del d["tier"]
        return json.dumps(d, sort_keys=True)


def split(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified 50/20/30 train/val/test indices (at least one image per class in each part)."""
    rng = np.random.default_rng(seed)
    tr, va, te = [], [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_te, n_va = max(1, round(0.3 * len(idx))), max(1, round(0.2 * len(idx)))
        te += idx[:n_te].tolist()
        va += idx[n_te:n_te + n_va].tolist()
        tr += idx[n_te + n_va:].tolist()
    return np.array(tr), np.array(va), np.array(te)


def split_user(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Protocol 2: stratified 70/30 train/val indices of the user's images (≥ 1 val per class)."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_va = max(1, round(0.3 * len(idx)))
        va += idx[:n_va].tolist()
        tr += idx[n_va:].tolist()
    return np.array(tr), np.array(va)


def job_data(job: "Job") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(images, labels, train, val, test indices, n_classes) of a job's target under its protocol."""
    if job.protocol >= 2:
        module = FRESH_MODULES.get(job.protocol, targets_v2)
        xu, yu, xt, yt, names = module.make_target(job.target, 0, job.n_per_class,
                                                   None if job.n_per_class is None else 2 * job.n_per_class)
        tr, va = split_user(yu)
        te = np.arange(len(yu), len(yu) + len(yt))
        return np.concatenate([xu, xt]), np.concatenate([yu, yt]), tr, va, te, len(names)
    imgs, labels, names = make_target(job.target, 0, job.n_per_class)
    tr, va, te = split(labels)
    return imgs, labels, tr, va, te, len(names)


def _zoo_entry(model_id: str):
    from proximity.catalog import load_catalog

    entries = {e.id: e for e in load_catalog("zoo")}
    if model_id not in entries:
        raise SystemExit(f"zoo member {model_id!r} is not built: run `proximity zoo build`")
    return entries[model_id]


def _build_zoo(job: Job, n_classes: int) -> tuple[torch.nn.Module, list[dict], tuple, str]:
    """A real zoo member as proximity sees it (pooled features of its timm build, truncation
    included) + a linear head; ``scratch`` = the same network from timm's initialisation.
    Returns (model, param groups, (mean, std) of its own preprocessing, weights sha256)."""
    from proximity.backbones import open_backbone, resolve_spec

    spec = resolve_spec(_zoo_entry(job.model))
    bb = open_backbone(spec, pretrained=job.kind == "finetune", seed=job.seed)
    torch.manual_seed(job.seed)
    head = torch.nn.Linear(bb.feature_dim, n_classes)
    model = torch.nn.Sequential(bb.model, head)
    norm = (tuple(spec.data_config["mean"]), tuple(spec.data_config["std"]))
    if job.kind == "scratch":
        return model, [{"params": model.parameters(), "lr": job.lr}], norm, ""
    folder = Path(spec.entry.source.split(":", 1)[1])
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()[:16]
    return model, [{"params": bb.model.parameters(), "lr": job.lr / 10},
                   {"params": head.parameters(), "lr": job.lr}], norm, digest


def _build(job: Job, n_classes: int, out: Path) -> tuple[torch.nn.Module, list[dict]]:
    from safetensors.torch import load_file

    torch.manual_seed(job.seed)
    if job.kind == "scratch":
        model = pretrain._model(job.model, n_classes)
        return model, [{"params": model.parameters(), "lr": job.lr}]
    folder = out / "backbones" / job.model
    meta = json.loads((folder / "bench.json").read_text())
    model = pretrain._model(meta["arch"], n_classes)
    state = {k: v for k, v in load_file(str(folder / "model.safetensors")).items()
             if not k.startswith(model.default_cfg.get("classifier", "head"))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    head = [n for n, _ in model.named_parameters() if n.startswith(model.default_cfg.get("classifier", "head"))]
    if unexpected or set(missing) - set(head) - {m for m in missing if "num_batches_tracked" in m}:
        raise RuntimeError(f"{job.model}: weights do not load: missing {missing[:4]}, unexpected {unexpected[:4]}")
    body = [p for n, p in model.named_parameters() if n not in head]
    heads = [p for n, p in model.named_parameters() if n in head]
    return model, [{"params": body, "lr": job.lr / 10}, {"params": heads, "lr": job.lr}]


def run_job(job: Job, out: Path, device: str = "cpu") -> dict:
    """Train one job; return its record (val/test accuracy, best epoch, seconds)."""
    t0 = time.perf_counter()
    imgs, labels, tr, va, te, n_classes = job_data(job)
    flips = (job.protocol < 2 or (FRESH_MODULES[job.protocol].flip_ok(job.target) if job.protocol in FRESH_MODULES
                                  else next(t for t in targets_v2.TARGETS if t.name == job.target).flip_ok))
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(labels).long()
    if job.tier == "zoo":
        model, groups, (mean, std), digest = _build_zoo(job, n_classes)
        x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    else:
        model, groups = _build(job, n_classes, out)
        x = (x - 0.5) / 0.5
        weights = out / "backbones" / job.model / "model.safetensors" if job.kind == "finetune" else None
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights else ""
    model.to(device)
    x, y = x.to(device), y.to(device)
    opt = torch.optim.AdamW(groups, weight_decay=0.05)
    steps_per_epoch = max(1, math.ceil(len(tr) / 32))
    total = job.epochs * steps_per_epoch
    base = [g["lr"] for g in opt.param_groups]
    g = torch.Generator().manual_seed(job.seed)
    best, best_state, best_epoch, step = -1.0, None, 0, 0
    for epoch in range(job.epochs):
        model.train()
        perm = torch.from_numpy(tr)[torch.randperm(len(tr), generator=g)]
        for i in range(0, len(perm), 32):
            frac = (step + 1) / steps_per_epoch if step < steps_per_epoch else \
                0.5 * (1 + math.cos(math.pi * (step - steps_per_epoch) / max(1, total - steps_per_epoch)))
            for pg, b in zip(opt.param_groups, base, strict=True):
                pg["lr"] = b * frac
            idx = perm[i:i + 32].to(device)
            xb = x[idx]
            flip = ((torch.rand(len(idx), generator=g) < 0.5) & flips).to(device)
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        val = _accuracy(model, x[va], y[va])
        if val > best:
            best, best_epoch = val, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch + 1 >= job.min_epochs and epoch - best_epoch >= job.patience:
            break
    model.load_state_dict(best_state)
    model.cpu()
    x, y = x.cpu(), y.cpu()
    return {**asdict(job), "weights_sha256": digest, "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
            "code_version": pretrain._code_version(), "val_acc": best, "test_acc": _accuracy(model, x[te], y[te]),
            "best_epoch": best_epoch, "n_train": len(tr), "n_test": len(te),
            "seconds": round(time.perf_counter() - t0, 2)}


@torch.inference_mode()
def _accuracy(model, x, y) -> float:
    model.eval()
    return float((torch.cat([model(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)]) == y).float().mean())


def read_records(path: Path) -> list[dict]:
    """The store's records; a last line cut short by a killed process is ignored (its job reruns)."""
    if not path.is_file():
        return []
    recs = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip():
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:
                if i != len(lines) - 1:
                    raise
    return recs


def load_done(path: Path) -> dict[str, dict]:
    return {Job(**{k: rec[k] for k in Job.__dataclass_fields__ if k in rec}).key(): rec for rec in read_records(path)}


def plan_stage(models: list[tuple[str, str]], targets: list[str], done: dict, quick: bool, tier: str = "bench",
               protocol: int = PROTOCOL, shard: tuple[int, int] = (0, 1)) -> list[Job]:
    """Stage 1 (lr sweep, seed 0) for every pair; stage 2 (best lr, seeds 1–2, or 1–4 under
    protocols 2–4) where stage 1 is complete. Target-major order; only the pairs of ``shard``."""
    kw: dict = {"epochs": 1, "patience": 1, "min_epochs": 1, "n_per_class": 6} if quick else {}
    if tier == "zoo":
        kw["tier"] = "zoo"
    if protocol != PROTOCOL:
        kw["protocol"] = protocol
    lrs = (1e-3,) if quick else LRS      # quick: one lr, still all seeds (evaluate needs them)
    seeds2 = SEEDS_STAGE2[protocol]
    jobs = []
    for target in targets:
        for kind, model in models:
            if zlib.crc32(f"{kind}/{model}/{target}".encode()) % shard[1] != shard[0]:
                continue
            stage1 = [Job(kind, model, target, lr, 0, **kw) for lr in lrs]
            jobs += [j for j in stage1 if j.key() not in done]
            if all(j.key() in done for j in stage1) and seeds2:
                best = max(stage1, key=lambda j: done[j.key()]["val_acc"])
                jobs += [j for j in (Job(kind, model, target, best.lr, s, **kw) for s in seeds2) if j.key() not in done]
    return jobs


def main(argv: list[str] | None = None) -> None:
    from proximity.cache import data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=data_dir() / "bench")
    ap.add_argument("--quick", action="store_true", help="one lr, one epoch, tiny data (3 seeds)")
    ap.add_argument("--targets", nargs="*", default=None)
    ap.add_argument("--backbones", nargs="*", default=None)
    ap.add_argument("--max-jobs", type=int, default=None, help="stop after this many jobs (resume later)")
    ap.add_argument("--store", type=Path, default=None,
                    help="JSON-lines results file [default: OUT/groundtruth/jobs.jsonl]")
    ap.add_argument("--device", default="cpu", help="torch device for the training jobs (cpu, cuda)")
    ap.add_argument("--deadline", type=float, default=None, help="start no new job after this many seconds")
    ap.add_argument("--tier", choices=("bench", "zoo"), default="bench",
                    help="bench: pretrain.py's backbones; zoo: the real offline zoo at 64 px")
    ap.add_argument("--protocol", type=int, choices=(1, 2, 3, 4), default=1,
                    help="2: targets_v2, OUT/v2/backbones, 4 seeds at the best lr [store: "
                         "results/v2/groundtruth.jsonl]; 3: protocol 2 on the fresh test targets of "
                         "targets_v3 [store: results/v3/groundtruth.jsonl]; 4: the same on targets_v4 [store: "
                         "results/v4/groundtruth.jsonl]")
    ap.add_argument("--shard", default="0/1", help="I/N: run only this process's share of the (model, target) pairs")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (e.g. 1 per process with --shard)")
    args = ap.parse_args(argv)
    shard = tuple(int(v) for v in args.shard.split("/"))
    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.out / "v2" if args.protocol >= 2 else args.out

    def candidates() -> list[tuple[str, str]]:
        """(kind, model) of every job family; re-read before each job, so backbones that another
        process finishes pretraining while this one runs join the plan."""
        if args.tier == "zoo":
            from proximity.catalog import load_catalog

            built = sorted(e.id for e in load_catalog("zoo"))
            backbones = [b for b in built if args.backbones is None or b in args.backbones]
            archs = backbones                      # each zoo member is its own architecture (truncation included)
        else:
            built = sorted(p.parent.name for p in (root / "backbones").glob("*/bench.json"))
            backbones = [b for b in built if args.backbones is None or b in args.backbones]
            archs = sorted({json.loads((root / "backbones" / b / "bench.json").read_text())["arch"] for b in backbones})
        return [("finetune", b) for b in backbones] + [("scratch", a) for a in archs]

    all_targets = {1: TARGETS, 2: targets_v2.TARGETS, 3: targets_v3.TARGETS, 4: targets_v4.TARGETS}[args.protocol]
    targets = args.targets or [t.name for t in all_targets]
    results = {2: RESULTS_V2, 3: RESULTS_V3, 4: RESULTS_V4}.get(args.protocol)
    default_store = results / "groundtruth.jsonl" if results is not None and not args.quick else \
        root / "groundtruth" / "jobs.jsonl"
    store = args.store or default_store
    store.parent.mkdir(parents=True, exist_ok=True)
    n, t_start = 0, time.perf_counter()
    over = lambda: (args.max_jobs is not None and n >= args.max_jobs) or \
        (args.deadline is not None and time.perf_counter() - t_start > args.deadline)  # noqa: E731
    while not over():
        # re-planned after every job: a target's stage 2 follows its stage 1 at once, and
        # other processes' records (--shard) are seen
        jobs = plan_stage(candidates(), targets, load_done(store), args.quick, args.tier, args.protocol, shard)
        if not jobs:
            break
        job = jobs[0]
        rec = run_job(job, root, args.device)
        with open(store, "a") as fh:          # one short line per write: appends do not interleave
            fh.write(json.dumps(rec) + "\n")
        n += 1
        print(f"{job.kind:8s} {job.model:20s} {job.target:30s} lr {job.lr:.0e} seed {job.seed}: "
              f"test {rec['test_acc']:.3f} (val {rec['val_acc']:.3f}, {rec['seconds']:.1f} s)", flush=True)
    print(f"{n} job(s) run; {len(load_done(store))} in {store}")


if __name__ == "__main__":
    main()
