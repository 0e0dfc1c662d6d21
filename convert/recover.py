"""A PyTorch checkpoint recovered from a bundle's BatchNorm-folded ONNX model.

``asl-edge convert`` exports I3D with each BatchNorm folded into the convolution before it (the
exporter's constant folding), so the ONNX file holds one weight and one bias per convolution and no
normalisation. The same function as an ``InceptionI3d`` ``state_dict``: each convolution's weight
as it is, its bias as the BatchNorm's shift, and a BatchNorm that is exactly the identity (scale 1,
mean 0, variance ``1 - eps``, so that ``sqrt(var + eps) == 1``). The result is written only after
PyTorch and ONNX Runtime agree on it (the export's own parity check), so a bundle that lost its
training checkpoint (the demo bundle) can be fine-tuned from what it ships.

    python -m convert.recover edge/demo/bundle      # writes edge/demo/bundle/checkpoint.pt
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper

from convert.checkpoint import CheckpointError, build_model
from convert.export import ExportError, ParityReport, check_parity
from convert.i3d import BN_EPS, InceptionI3d
from edge.core.bundle import (
    CHECKPOINT_FILE,
    CHECKPOINT_SECTION,
    MANIFEST_FILE,
    load_bundle,
    sha256_of,
    update_manifest,
)

log = logging.getLogger(__name__)

RECOVERED_KIND = "recovered from model.onnx: BatchNorm folded into the convolutions, identity BatchNorm"


def _tensor(initializer: onnx.TensorProto) -> torch.Tensor:
    return torch.from_numpy(numpy_helper.to_array(initializer).copy())


def folded_state_dict(model_path: Path) -> dict[str, torch.Tensor]:
    """The I3D ``state_dict`` an ONNX export of ``asl-edge convert`` computes (BatchNorm folded)."""
    model = onnx.load(str(model_path))
    initializers = {init.name: init for init in model.graph.initializer}
    if any(node.op_type == "BatchNormalization" for node in model.graph.node):
        raise CheckpointError(f"{model_path}: BatchNorm is not folded; recover only asl-edge convert exports")
    state: dict[str, torch.Tensor] = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        # The exporter names each node by its module path: "/Mixed_3b/b1b/conv3d/Conv".
        scope = node.name.strip("/").split("/")
        if (
            len(scope) < 3
            or scope[-2] != "conv3d"
            or len(node.input) != 3
            or not all(name in initializers for name in node.input[1:])
        ):
            raise CheckpointError(f"{model_path}: convolution {node.name!r} is not an I3D unit with a bias")
        unit = ".".join(scope[:-2])
        weight, bias = (_tensor(initializers[name]) for name in node.input[1:])
        state[f"{unit}.conv3d.weight"] = weight
        if unit == "logits":
            state["logits.conv3d.bias"] = bias
            continue
        channels = bias.shape[0]
        state[f"{unit}.bn.weight"] = torch.ones(channels)
        state[f"{unit}.bn.bias"] = bias
        state[f"{unit}.bn.running_mean"] = torch.zeros(channels)
        state[f"{unit}.bn.running_var"] = torch.full((channels,), 1.0 - BN_EPS)
        state[f"{unit}.bn.num_batches_tracked"] = torch.tensor(0)
    return state


def recover_model(model_path: Path) -> InceptionI3d:
    """An eval-mode ``InceptionI3d`` computing the ONNX model (shapes checked by the loader)."""
    return build_model(folded_state_dict(model_path), model_path)


def recover_checkpoint(bundle_dir: Path) -> tuple[Path, ParityReport]:
    """Write ``checkpoint.pt`` into a bundle once it reproduces ``model.onnx``; record it in the
    manifest (the model's id and files are unchanged)."""
    bundle = load_bundle(bundle_dir)
    model = recover_model(bundle.model_path)
    parity = check_parity(model, bundle.model_path, clips=3)
    if not parity.passed:
        raise ExportError(
            f"the recovered checkpoint does not reproduce {bundle.model_path}: max relative difference "
            f"{parity.max_rel_diff:.3g}, top-1 agreement {parity.top1_agreement:.0%}"
        )
    path = bundle_dir / CHECKPOINT_FILE
    torch.save(model.state_dict(), path)
    update_manifest(
        bundle_dir,
        files={},
        sections={
            CHECKPOINT_SECTION: {
                "file": CHECKPOINT_FILE,
                "sha256": sha256_of(path),
                "kind": RECOVERED_KIND,
                "parity": parity.to_dict(),
            }
        },
    )
    return path, parity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("bundle", type=Path, help=f"bundle directory (with {MANIFEST_FILE} and model.onnx)")
    args = parser.parse_args(argv)
    path, parity = recover_checkpoint(args.bundle)
    print(f"wrote {path}: max relative difference {parity.max_rel_diff:.3g} against ONNX Runtime")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
