"""``asl-edge finetune``: a bundle's model, further trained on a field dataset, as a new bundle.

The run starts from the bundle's ``checkpoint.pt`` (or a WLASL ``.pt`` given with ``--checkpoint``)
and trains on the dataset's ``train`` split, mixed in every batch with replayed examples of what the
model already knew (``convert.sources``: the synthetic signer, a folder of videos, a WLASL split),
so that it learns the new without forgetting the old. Clips are the runtime's own model inputs
(``edge.core.sampling``, ``edge.core.preprocess``); a field clip already holds the model's crops and
is never cropped again. Augmentations are small and standard (``convert.augment``).

BatchNorm trains with frozen statistics: a fine-tuning batch of a few clips is far too small for
its statistics, and a bundle recovered from a folded ONNX model has identity BatchNorm whose
statistics would be meaningless to re-estimate. The blocks before ``train_from`` (by default the
stem and Mixed_3b/3c, the high-resolution half of the network) are frozen too: they see local
motion and edges, which mean the same for every signer, and leaving them out of the backward pass
saves about 40% of a step on a CPU. The default budget is a fixed number of steps, so a run takes
the same time whatever the dataset's size; ``epochs`` counts passes over the field examples instead.

Deterministic: the batches, each example's augmentation and each step's dropout are functions of
the seed and the step, so a run killed and resumed (``convert.train_state``) ends with the same
weights as an uninterrupted one: bit for bit on a CPU; on CUDA up to the rounding of the kernels
that accumulate atomically (cuDNN is held to its deterministic algorithms where it has them).
Several processes run through ``torchrun`` (DDP; NCCL on GPUs, gloo on CPUs), each taking its slice
of every global batch; CUDA trains in mixed precision. The new bundle is written by the convert
path (ONNX export, parity check, manifest) with a ``lineage`` block and its own ``checkpoint.pt``,
into a work directory first and then renamed into place whole.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from convert.augment import augment
from convert.batches import BatchPlan, Pick
from convert.checkpoint import CheckpointError, load_checkpoint
from convert.distributed import World, join_world
from convert.field_dataset import FieldDataset, load_field_dataset
from convert.i3d import InceptionI3d
from convert.lineage import build_lineage
from convert.pipeline import ConversionResult, write_bundle
from convert.sources import LabelledCrops, field_crops, source_kind
from convert.train_state import load_state, remove_work_dir, save_state, work_dir_for
from convert.training_data import NO_REPLAY, TrainingExamples, load_examples, resolve_replay
from edge.core.bundle import (
    CHECKPOINT_FILE,
    CHECKPOINT_SECTION,
    LINEAGE_SECTION,
    Bundle,
    load_bundle,
    sha256_of,
)
from edge.core.errors import AslEdgeError

log = logging.getLogger(__name__)

TRAINABLE_FROM = (
    "Conv3d_1a_7x7",
    "Conv3d_2b_1x1",
    "Conv3d_2c_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "Mixed_5b",
    "Mixed_5c",
    "logits",
)


class FinetuneError(AslEdgeError):
    """Fine-tuning cannot start or its inputs do not fit the model."""


@dataclass(frozen=True)
class FinetuneSettings:
    """What decides a fine-tuning run's result (all of it is recorded in the new bundle)."""

    steps: int = 150  # the training budget, whatever the dataset's size (see epochs)
    epochs: int = 0  # when set: this many passes over the field examples instead of ``steps``
    batch: int = 8  # per process
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1
    label_smoothing: float = 0.1
    replay_fraction: float = 0.5
    replay_count: int = 0  # 0: eight examples per class, at most 256
    train_from: str = "Mixed_4b"
    augment: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.train_from not in TRAINABLE_FROM:
            raise FinetuneError(f"train_from {self.train_from!r} is not one of {', '.join(TRAINABLE_FROM)}")
        if not 0.0 <= self.replay_fraction <= 1.0:
            raise FinetuneError(f"replay_fraction must be in [0, 1], got {self.replay_fraction}")


@dataclass(frozen=True)
class FinetuneJob:
    bundle: Path
    dataset: Path
    out: Path
    replay: str | None = None  # None: synthetic for the demo's glosses, else required
    checkpoint: Path | None = None
    device: str = "auto"
    work_dir: Path | None = None
    save_every: int = 10  # steps between saved states
    parent_licence: str | None = None
    progress: bool = True


@dataclass(frozen=True)
class FinetuneResult:
    conversion: ConversionResult | None  # None on processes other than 0
    steps: int
    resumed_from: int
    train_s: float
    cpu_s: float
    final_loss: float
    val_top1: float | None
    lineage: dict[str, Any] = field(default_factory=dict)


def _parent_weights(bundle: Bundle, checkpoint: Path | None) -> tuple[InceptionI3d, Path]:
    """The model to start from and the file it came from (its sha256 goes into the lineage)."""
    if checkpoint is None:
        recorded = bundle.manifest.get(CHECKPOINT_SECTION)
        checkpoint = bundle.path / CHECKPOINT_FILE
        if not checkpoint.is_file():
            raise FinetuneError(
                f"{bundle.path} has no {CHECKPOINT_FILE}: pass --checkpoint with the PyTorch weights it "
                "was converted from (or convert with --keep-checkpoint)"
            )
        expected = recorded.get("sha256") if isinstance(recorded, dict) else None
        if expected != sha256_of(checkpoint):
            raise FinetuneError(
                f"{checkpoint}: sha256 does not match the manifest's {CHECKPOINT_SECTION} record; "
                "it is not the checkpoint of this bundle"
            )
    try:
        model = load_checkpoint(checkpoint)
    except CheckpointError as exc:
        raise FinetuneError(str(exc)) from exc
    spec = bundle.spec
    if model.num_classes != spec.num_classes:
        raise FinetuneError(
            f"{checkpoint} has {model.num_classes} classes, the bundle {spec.num_classes}; "
            "fine-tune from the checkpoint the bundle was converted from"
        )
    return model, checkpoint


def _freeze(model: InceptionI3d, train_from: str) -> list[nn.Parameter]:
    """Freeze every block before ``train_from``; returns the trainable parameters."""
    frozen = True
    trainable: list[nn.Parameter] = []
    for name, module in model.named_children():
        frozen = frozen and name != train_from
        for parameter in module.parameters():
            parameter.requires_grad_(not frozen)
            if not frozen:
                trainable.append(parameter)
    return trainable


def _train_mode(model: nn.Module) -> None:
    """Dropout on, BatchNorm statistics frozen (see the module's docstring)."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.eval()


def learning_rate(settings: FinetuneSettings, step: int, total: int) -> float:
    """Linear warm-up, then a cosine decay to zero: a pure function of the step."""
    warmup = max(1, round(total * settings.warmup_fraction))
    if step < warmup:
        return settings.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return settings.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


def _inputs(crops: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """uint8 ``(B, T, H, W, 3)`` BGR to float ``(B, 3, T, H, W)`` in [-1, 1], channels-last in
    memory (the layout 3D convolutions train fastest in)."""
    tensor = torch.from_numpy(np.stack(crops)).to(device, non_blocking=True)
    return tensor.permute(0, 4, 1, 2, 3).float().mul_(2.0 / 255.0).sub_(1.0)


def _batch_crops(examples: TrainingExamples, picks: list[Pick], augmented: bool) -> list[np.ndarray]:
    crops = []
    for pick in picks:
        clip = examples.pool(pick.pool)[pick.index].crops
        crops.append(augment(clip, np.random.default_rng(pick.seed)) if augmented else clip)
    return crops


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.default_rng([seed, step, rank, 7]).integers(2**62))


def _top1(model: InceptionI3d, items: list[LabelledCrops], device: torch.device) -> float | None:
    """Top-1 on held-out examples (the dataset's val split), without augmentation."""
    labelled = [item for item in items if item.label is not None]
    if not labelled:
        return None
    model.eval()
    hits = 0
    with torch.no_grad():
        for item in labelled:
            logits = model(_inputs([item.crops], device)).mean(dim=2)
            hits += int(logits.argmax(1).item() == item.label)
    return hits / len(labelled)


def _model_stem(parent_model_id: str) -> str:
    """``demo_i3d-bb6825e7`` -> ``demo_i3d-ft`` (and a fine-tuned model's stem stays the same)."""
    stem = re.sub(r"-[0-9a-f]{8}$", "", parent_model_id)
    return stem if stem.endswith("-ft") else f"{stem}-ft"


def _fingerprint(
    settings: FinetuneSettings,
    checkpoint_sha: str,
    dataset: FieldDataset,
    replay: str,
    world: World,
    examples: TrainingExamples,
) -> dict[str, Any]:
    return {
        "settings": dataclasses.asdict(settings),
        "parent_checkpoint_sha256": checkpoint_sha,
        "dataset_version": dataset.version,
        "replay": replay,
        "examples": [len(examples.field), len(examples.replay)],
        "world_size": world.size,
        "device": world.device.type,
        "torch": str(torch.__version__),
    }


def finetune(
    job: FinetuneJob,
    settings: FinetuneSettings,
    report: Callable[[str], None] = lambda line: None,
) -> FinetuneResult:
    """Train, export and write the new bundle (process 0); every process returns the result."""
    out = Path(job.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FinetuneError(f"{out} exists; choose a new --out (a bundle is never overwritten)")
    bundle = load_bundle(job.bundle)
    dataset = load_field_dataset(job.dataset)
    replay = resolve_replay(job.replay, bundle.spec)
    if replay != NO_REPLAY:
        source_kind(replay)
    model, checkpoint = _parent_weights(bundle, job.checkpoint)
    checkpoint_sha = sha256_of(checkpoint)
    world = join_world(job.device)
    try:
        return _run(job, settings, report, bundle, dataset, replay, model, checkpoint_sha, world)
    finally:
        world.close()


def _train_steps(
    job: FinetuneJob,
    settings: FinetuneSettings,
    model: InceptionI3d,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    examples: TrainingExamples,
    plan: BatchPlan,
    world: World,
    steps: range,
    work: Path,
    fingerprint: dict[str, Any],
) -> list[float]:
    """Run ``steps``, saving the state every ``job.save_every``; returns the last 20 losses."""
    device, amp = world.device, world.device.type == "cuda"
    network: nn.Module = model
    if world.distributed:
        network = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if amp else None, broadcast_buffers=False
        )
    total = steps.stop
    bar = tqdm(
        total=total,
        initial=steps.start,
        desc="fine-tuning",
        unit="step",
        disable=not (job.progress and world.main),
    )
    recent: list[float] = []
    for step in steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings, step, total)
        picks = plan.batch(step)[world.rank :: world.size]
        inputs = _inputs(_batch_crops(examples, picks, settings.augment), device)
        targets = torch.tensor([examples.pool(p.pool)[p.index].label for p in picks], device=device)
        torch.manual_seed(_step_seed(settings.seed, step, world.rank))  # this step's dropout
        _train_mode(network)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = network(inputs).mean(dim=2)
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=settings.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        recent = [*recent[-19:], float(loss.item())]
        bar.update(1)
        bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}")
        done = step + 1
        if world.main and (done % job.save_every == 0 or done == total):
            parts = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
            }
            save_state(work, fingerprint, done, parts)
    bar.close()
    return recent


def _run(
    job: FinetuneJob,
    settings: FinetuneSettings,
    report: Callable[[str], None],
    bundle: Bundle,
    dataset: FieldDataset,
    replay: str,
    model: InceptionI3d,
    checkpoint_sha: str,
    world: World,
) -> FinetuneResult:
    started, cpu_started = time.monotonic(), time.process_time()
    examples = load_examples(bundle.spec, dataset, replay, settings.replay_count, settings.seed)
    report(
        f"training on {len(examples.field)} field examples and {len(examples.replay)} replayed "
        f"({replay}); {world.size} process(es) on {world.device.type}"
    )
    plan = BatchPlan(
        [item.label for item in examples.field],  # type: ignore[misc]
        [item.label for item in examples.replay],  # type: ignore[misc]
        settings.batch * world.size,
        settings.replay_fraction,
        settings.seed,
    )
    total = settings.epochs * plan.steps_per_epoch if settings.epochs else settings.steps
    device = world.device
    if device.type == "cuda":  # the same algorithms every run (some kernels still add atomically)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    model = model.to(device).to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    trainable = _freeze(model, settings.train_from)
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    fingerprint = _fingerprint(settings, checkpoint_sha, dataset, replay, world, examples)
    work = job.work_dir or work_dir_for(Path(job.out))
    state = load_state(work, fingerprint)
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        start = int(state["step"])
        report(f"resumed from {work} after step {start} of {total}")
    recent = _train_steps(
        job, settings, model, optimizer, scaler, examples, plan, world, range(start, total), work, fingerprint
    )
    digest = float(sum(p.detach().double().sum() for p in model.parameters()))
    if not world.agree(digest):
        raise FinetuneError("the processes ended with different weights: DDP did not keep them in step")
    train_s, cpu_s = time.monotonic() - started, time.process_time() - cpu_started
    val_items = list(field_crops(dataset, bundle.spec, "val"))
    val_top1 = _top1(model, val_items, device)
    final_loss = sum(recent) / len(recent) if recent else float("nan")
    lineage = build_lineage(
        bundle.manifest,
        dataset,
        replay,
        {"seed": settings.seed, "examples": len(examples.replay)},
        checkpoint_sha,
        job.parent_licence,
    )
    lineage["training"] = {
        **dataclasses.asdict(settings),
        "field_examples": len(examples.field),
        "replay_examples": len(examples.replay),
        "unknown_glosses_left_out": dict(examples.unknown_glosses),
        "processes": world.size,
        "device": world.device.type,
        "mixed_precision": amp,
        "batchnorm": "frozen statistics",
        "torch": str(torch.__version__),
        "steps": total,
        "resumed_from_step": start,
        "train_s": round(train_s, 1),
        "cpu_s": round(cpu_s, 1),
        "final_loss": round(final_loss, 4),
        "val_top1": val_top1,
        "val_examples": len(val_items),
    }
    conversion = None
    if world.main:
        conversion = _write(job, bundle, model, work, lineage)
        remove_work_dir(work)
    world.barrier()
    return FinetuneResult(conversion, total, start, train_s, cpu_s, final_loss, val_top1, lineage)


def _write(
    job: FinetuneJob, bundle: Bundle, model: InceptionI3d, work: Path, lineage: dict[str, Any]
) -> ConversionResult:
    """Export the model into ``work/bundle`` through the convert path, then move it into place."""
    cpu_model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    weights = work / CHECKPOINT_FILE
    torch.save({k: v.detach().contiguous() for k, v in cpu_model.state_dict().items()}, weights)
    staged = work / "bundle"
    spec = bundle.spec
    extra: dict[str, Any] = {LINEAGE_SECTION: lineage}
    if "note" in bundle.manifest:
        extra["note"] = bundle.manifest["note"]
    result = write_bundle(
        cpu_model,
        list(spec.labels),
        spec.frames,
        staged,
        _model_stem(spec.model_id),
        {
            "checkpoint": CHECKPOINT_FILE,
            "checkpoint_sha256": sha256_of(weights),
            "labels": "labels.txt",
            "fine_tuned_from": spec.model_id,
        },
        spec.preprocessing,
        sampling=spec.sampling,
        extra=extra,
        checkpoint=weights,
    )
    out = Path(job.out)
    if out.is_dir():
        out.rmdir()  # empty: checked before training
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, out)
    return dataclasses.replace(result, bundle=out)
