"""Loading WLASL-style checkpoints in their real-world variants, and refusing everything else."""

import pytest
import torch
from torch import nn

from convert.checkpoint import CheckpointError, load_checkpoint
from convert.i3d import InceptionI3d
from tests.conftest import save_checkpoint


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_loads_plain_and_dataparallel_state_dicts(tiny_model, tmp_path, prefix):
    path = save_checkpoint(tiny_model, tmp_path / "c.pt", prefix)
    loaded = load_checkpoint(path)
    assert loaded.num_classes == 10
    assert loaded.width == pytest.approx(0.125)
    assert not loaded.training
    assert _same_weights(loaded, tiny_model)


def test_loads_wrapped_training_checkpoint_without_batch_counters(tiny_model, tmp_path):
    state = {k: v for k, v in tiny_model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")
    clip = torch.rand(1, 3, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(clip), tiny_model(clip), atol=1e-5)


def test_class_count_comes_from_the_checkpoint(tmp_path):
    path = save_checkpoint(InceptionI3d(37, width=0.125), tmp_path / "c.pt")
    assert load_checkpoint(path).num_classes == 37


def test_not_an_i3d_names_missing_and_unexpected_keys(tmp_path):
    resnet_like = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 2))
    torch.save(resnet_like.state_dict(), tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match=r"not an I3D checkpoint: .*missing .*Conv3d_1a_7x7"):
        load_checkpoint(tmp_path / "r.pt")


def test_extra_and_missing_keys_are_counted(tiny_model, tmp_path):
    state = dict(tiny_model.state_dict())
    del state["Mixed_4c.b0.conv3d.weight"]
    state["Mixed_9z.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "c.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "c.pt")
    message = str(info.value)
    assert "1 keys missing (Mixed_4c.b0.conv3d.weight)" in message
    assert "1 unexpected (Mixed_9z.extra.weight)" in message
    assert "\n" not in message


def test_inconsistent_shapes_are_refused(tiny_model, tmp_path):
    state = dict(tiny_model.state_dict())
    state["Mixed_3b.b1b.conv3d.weight"] = torch.zeros(5, 5, 3, 3, 3)
    torch.save(state, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"1 tensors have the wrong shape.*Mixed_3b\.b1b"):
        load_checkpoint(tmp_path / "c.pt")


@pytest.mark.parametrize(
    ("content", "pattern"),
    [(b"", "not a readable PyTorch checkpoint"), (b"garbage" * 100, "not a readable PyTorch checkpoint")],
)
def test_unreadable_files(tmp_path, content, pattern):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(tmp_path / "bad.pt")


def test_missing_file_and_non_dict(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="expected a state_dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_flow_stream_checkpoints_are_refused(tmp_path):
    flow = InceptionI3d(5, width=0.125, in_channels=2)
    torch.save(flow.state_dict(), tmp_path / "flow.pt")
    with pytest.raises(CheckpointError, match="2 input channels"):
        load_checkpoint(tmp_path / "flow.pt")
