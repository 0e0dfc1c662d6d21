"""The network matches WLASL's InceptionI3d: keys, shapes, padding and output layout."""

import pytest
import torch

from convert.i3d import InceptionI3d, same_padding

# Shapes from the published architecture (WLASL's pytorch_i3d.py) for 100 classes, full width.
WLASL_SHAPES = {
    "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
    "Conv3d_1a_7x7.bn.running_mean": (64,),
    "Conv3d_2b_1x1.conv3d.weight": (64, 64, 1, 1, 1),
    "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
    "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
    "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3),
    "Mixed_3c.b3b.conv3d.weight": (64, 256, 1, 1, 1),
    "Mixed_4b.b0.conv3d.weight": (192, 480, 1, 1, 1),
    "Mixed_4b.b1b.bn.running_var": (208,),
    "Mixed_4f.b1b.conv3d.weight": (320, 160, 3, 3, 3),
    "Mixed_5b.b0.conv3d.weight": (256, 832, 1, 1, 1),
    "Mixed_5c.b2b.conv3d.weight": (128, 48, 3, 3, 3),
    "Mixed_5c.b3b.conv3d.weight": (128, 832, 1, 1, 1),
    "logits.conv3d.weight": (100, 1024, 1, 1, 1),
    "logits.conv3d.bias": (100,),
}


def test_state_dict_keys_and_shapes_match_wlasl():
    state = InceptionI3d(100).state_dict()
    # 57 conv+BN units with 6 entries each, and the biased logits convolution.
    assert len(state) == 57 * 6 + 2
    for key, shape in WLASL_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(key.startswith(("avg_pool", "dropout")) for key in state)
    params = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert 12_000_000 < params < 12_500_000


def test_batchnorm_uses_tensorflow_epsilon():
    bns = [m for m in InceptionI3d(5).modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(bns) == 57
    assert {m.eps for m in bns} == {1e-3}


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (224, 7, 2, (2, 3)),
        (64, 7, 2, (2, 3)),
        (7, 3, 2, (1, 1)),
        (56, 3, 1, (1, 1)),
        (8, 2, 2, (0, 0)),
        (9, 2, 2, (0, 1)),
        (5, 1, 1, (0, 0)),
    ],
)
def test_same_padding_matches_tensorflow(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


@pytest.mark.parametrize(("frames", "steps"), [(16, 1), (24, 2), (32, 3)])
def test_logits_are_per_time_step(frames, steps):
    model = InceptionI3d(7, width=0.125).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, frames, 224, 224))
    assert out.shape == (2, 7, steps)


def test_width_scales_every_block():
    small = InceptionI3d(12, width=0.125).state_dict()
    assert small["Conv3d_1a_7x7.conv3d.weight"].shape == (8, 3, 7, 7, 7)
    assert small["Mixed_4b.b1b.bn.running_var"].shape == (26,)
    assert small["logits.conv3d.weight"].shape == (12, 128, 1, 1, 1)
    with pytest.raises(ValueError, match="width"):
        InceptionI3d(12, width=0)
