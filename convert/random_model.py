"""Random but informative I3D weights and probe clips, for tests and benchmarks.

With PyTorch's default initialisation I3D's output hardly depends on its input, so parity and
agreement checks on such a model pass trivially. ``randomize`` gives He-normal convolutions,
BatchNorm statistics re-estimated on probe clips and a standardised head, so that the top-1 class
changes from clip to clip, as it does for a trained model.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convert.i3d import InceptionI3d


def smooth_random_clips(count: int, frames: int, seed: int, size: int = 224) -> np.ndarray:
    """Clips ``(count, 3, frames, size, size)`` in [-1, 1] with video-like low-frequency content.

    White noise averages out in I3D's pooling; smooth blobs that move over time do not.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1.0, 1.0, size=(count, 3, max(2, frames // 4), 7, 7)).astype(np.float32)
    clips = F.interpolate(torch.from_numpy(coarse), size=(frames, size, size), mode="trilinear")
    return clips.clamp_(-1.0, 1.0).numpy()


def randomize(model: InceptionI3d, seed: int, frames: int = 16, probes: int = 4) -> InceptionI3d:
    """Give ``model`` random weights whose predictions depend on the input; returns it in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv3d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm3d):
                module.reset_running_stats()
                module.momentum = None
                module.weight.copy_(1.0 + 0.2 * torch.randn(module.num_features, generator=generator))
                module.bias.copy_(0.2 * torch.randn(module.num_features, generator=generator))
        probe = torch.from_numpy(smooth_random_clips(probes, frames, seed))
        model.train()
        model(probe)
        model.eval()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.momentum = 0.01
        logits = model(probe)
        mean = logits.mean(dim=(0, 2))
        std = logits.std(dim=(0, 2)).clamp_min(1e-6)
        head = model.logits.conv3d
        head.weight.div_(std.view(-1, 1, 1, 1, 1))
        head.bias = nn.Parameter(-mean / std)
    return model
