"""A full-size I3D that recognizes signs: the demo model widened to full width.

Benchmarks need the full network (width 1, 111 GMAC a clip at T=64) and, for the INT8 and BF16
accuracy gates, a model that has learnt something: random weights put the top-1 class at the mercy
of rounding noise, so a reduced precision "fails" where a trained model would not. The demo model
is I3D at width 1/8, so every layer of the full network has exactly 8 times its channels: each
channel is copied 8 times and each convolution's weights divided by 8 over the copies, which
computes the demo model's function with the full network's shapes and cost. The head gets 100
classes, the 12 the demo model knows and 88 that never win (zero weights, low bias), and the clip
length is set to T (the demo model was trained at 32; it still recognizes signs stretched to 64).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edge.core.bundle import DEMO_BUNDLE, Manifest, load_bundle, sha256_of, write_bundle_metadata

WIDTH_FACTOR = 8  # the demo model is I3D at width 1/8
UNUSED_CLASS_BIAS = 100.0  # how far below the lowest live bias the 88 unused classes sit


def widen(model: onnx.ModelProto, classes: int, frames: int, factor: int = WIDTH_FACTOR) -> onnx.ModelProto:
    """``model`` (a narrow I3D export: Conv with folded BatchNorm, Relu, MaxPool, Concat, AveragePool,
    Reshape) with every channel copied ``factor`` times, ``classes`` outputs and clip length ``frames``."""
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    convolutions = [node for node in graph.node if node.op_type == "Conv"]
    head = convolutions[-1]
    for node in convolutions:
        weights = numpy_helper.to_array(initializers[node.input[1]])
        bias = numpy_helper.to_array(initializers[node.input[2]])
        if node.input[0] != graph.input[0].name:  # the first convolution reads the 3 colour channels
            weights = np.repeat(weights, factor, axis=1) / factor
        if node is head:
            live = weights.shape[0]
            wide = np.zeros((classes, *weights.shape[1:]), np.float32)
            wide[:live] = weights
            wide_bias = np.full(classes, bias.min() - UNUSED_CLASS_BIAS, np.float32)
            wide_bias[:live] = bias
        else:
            wide, wide_bias = np.repeat(weights, factor, axis=0), np.repeat(bias, factor)
        for name, value in ((node.input[1], wide), (node.input[2], wide_bias)):
            initializers[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))
    out_frames = frames // 8 - 1
    (reshape,) = [node for node in graph.node if node.op_type == "Reshape"]
    shape = np.array([1, classes, out_frames], np.int64)
    initializers[reshape.input[1]].CopyFrom(numpy_helper.from_array(shape, reshape.input[1]))
    graph.input[0].type.tensor_type.shape.dim[2].dim_value = frames
    graph.output[0].type.tensor_type.shape.dim[1].dim_value = classes
    graph.output[0].type.tensor_type.shape.dim[2].dim_value = out_frames
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def write_full_bundle(directory: Path, classes: int = 100, frames: int = 64) -> Path:
    """A bundle of the widened demo model; its first 12 labels are the synthetic signer's glosses."""
    demo = load_bundle(DEMO_BUNDLE)
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(widen(onnx.load(str(demo.model_path)), classes, frames), str(directory / "model.onnx"))
    labels = demo.spec.labels + tuple(f"unused{index}" for index in range(len(demo.spec.labels), classes))
    spec = dataclasses.replace(
        demo.spec,
        input_shape=(1, 3, frames, 224, 224),
        output_shape=(1, classes, frames // 8 - 1),
        labels=labels,
        model_id=f"demo_widened-{classes}c-t{frames}",
    )
    source = {"widened_from": demo.spec.model_id, "width_factor": WIDTH_FACTOR}
    write_bundle_metadata(
        directory, Manifest(spec, {"model.onnx": sha256_of(directory / "model.onnx")}, source)
    )
    return directory
