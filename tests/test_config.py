"""Config: typed, validated, unknown keys rejected, one line per problem."""

from pathlib import Path

import pytest

from asl_edge.cli import main
from edge.core.config import Config, load_config, read_config
from edge.core.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_work_without_a_file(monkeypatch):
    monkeypatch.delenv("ASL_EDGE_CONFIG", raising=False)
    monkeypatch.setattr("edge.core.config.DEFAULT_CONFIG_PATH", Path("/nonexistent/config.toml"))
    config = load_config(None)
    assert config == Config()
    assert config.model.backend == "auto"
    assert config.model.top_k == 5


def test_valid_file_and_relative_bundle(tmp_path):
    path = _write(
        tmp_path,
        '[device]\nid = "kiosk-7"\n[model]\nbundle = "models/wlasl100"\ntop_k = 3\nmin_confidence = 1\n',
    )
    config = load_config(path)
    assert config.device.id == "kiosk-7"
    assert config.model.bundle == str(tmp_path.resolve() / "models/wlasl100")
    assert config.model.min_confidence == 1.0
    assert config.model.top_k == 3


def test_environment_variable_names_the_file(tmp_path, monkeypatch):
    path = _write(tmp_path, "[model]\ntop_k = 2\n")
    monkeypatch.setenv("ASL_EDGE_CONFIG", str(path))
    assert load_config(None).model.top_k == 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[model]\ntopk = 3\n", "model.topk: unknown key"),
        ("[modle]\n", "modle: unknown section"),
        ("[model]\ntop_k = 0\n", "model.top_k: 0 is below the minimum 1"),
        ('[model]\ntop_k = "5"\n', "model.top_k: expected int, got str"),
        ("[model]\ntop_k = true\n", "model.top_k: expected int, got bool"),
        (
            '[model]\nbackend = "cuda"\n',
            "model.backend: 'cuda' is not one of auto, tensorrt, openvino, onnxruntime",
        ),
        (
            '[model]\nbackend = "openvino"\nprecision = "fp16"\n',
            "model.precision: openvino does not run fp16 (it runs auto, fp32, int8, bf16; fp16 is TensorRT's",
        ),
        (
            '[model]\nbackend = "tensorrt"\nprecision = "bf16"\n',
            "model.precision: tensorrt does not run bf16",
        ),
        (
            '[model]\nbackend = "onnxruntime"\nprecision = "int8"\n',
            "model.precision: onnxruntime does not run int8",
        ),
        ("[model]\nmin_confidence = 1.5\n", "model.min_confidence: 1.5 is above the maximum 1.0"),
        ('[device]\nid = "a/b"\n', "device.id: 'a/b' must be 1-64 ASCII"),
        ("model = 3\n", "model: must be a table"),
        ("[model\n", "invalid TOML"),
    ],
)
def test_problems_name_the_key(tmp_path, text, problem):
    _, problems = read_config(_write(tmp_path, text))
    assert len(problems) == 1
    assert problem in problems[0]
    with pytest.raises(ConfigError, match=r"config\.toml"):
        load_config(tmp_path / "config.toml")


def test_check_config_lists_every_problem(tmp_path, capsys):
    path = _write(tmp_path, '[model]\ntop_k = 0\ncombine = "median"\nfoo = 1\n')
    assert main(["check-config", str(path)]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("model.") for line in lines)
    good = _write(tmp_path, "[model]\ntop_k = 1\n")
    assert main(["check-config", str(good)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")
    assert main(["check-config", str(tmp_path / "missing.toml")]) == 2


def test_example_config_documents_every_key_with_its_default():
    import dataclasses

    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    config, problems = read_config(example)
    assert problems == []
    # The defaults, with the state directory's ~ expanded as for any path read from a file.
    assert config.storage.state_dir == str(Path(Config().storage.state_dir).expanduser())
    assert dataclasses.replace(config, storage=Config().storage) == Config()
    text = example.read_text()
    for section in dataclasses.fields(Config):
        assert f"[{section.name}]" in text
        for item in dataclasses.fields(section.default_factory()):
            assert f"\n{item.name} = " in text
            assert f"# {item.metadata['doc']}" in text


REFUSED = [
    (
        "[segmenter]\nmin_sign_s = 5.0\nmax_sign_s = 2.0\n",
        "segmenter.min_sign_s: 5 is not below max_sign_s 2",
    ),
    ("[segmenter]\nstop_fraction = 0.01\n", "segmenter.stop_fraction: 0.01 is above start_fraction"),
    ("[segmenter]\nwindow_s = 1.0\nstride_s = 2.0\n", "segmenter.stride_s: 2 is above window_s 1"),
    (
        '[source]\nuri = "ftp://camera/stream"\n',
        "source.uri: 'ftp://camera/stream' is not a supported source",
    ),
    ('[source]\nuri = "gst:videotestsrc ! fakesink"\n', "must end in 'appsink name=sink'"),
    (
        '[source]\nuri = "file:///nonexistent/video.mp4"\n',
        "source.uri: /nonexistent/video.mp4: no such video file",
    ),
    ('[mqtt]\nhost = ""\n', "mqtt.host: '' is not a host name or IP address"),
    ('[mqtt]\nhost = "broker name"\n', "mqtt.host: 'broker name' is not a host name"),
    ('[mqtt]\ntopic_prefix = "asl/#"\n', "mqtt.topic_prefix: 'asl/#' must be topic levels"),
    ('[mqtt]\ntopic_prefix = "kiosks/+/x"\n', "without + or # wildcards"),
    ('[mqtt]\ntls_key = "client.key"\n', "mqtt.tls_key: a client key needs its certificate"),
    ('[mqtt]\ntls_ca = "missing-ca.crt"\n', "mqtt TLS files cannot be used"),
    ('[mqtt]\nusername = "kiosk"\npassword_file = "missing"\n', "mqtt.password_file: cannot read"),
    (
        '[sync]\nbucket = "fleet"\nendpoint_url = "not a url"\n',
        "sync.endpoint_url: 'not a url' is not an http(s) URL",
    ),
    ('[sync]\nbucket = "Fleet_Bucket"\n', "sync.bucket: 'Fleet_Bucket' is not an S3 bucket name"),
    ('[sync]\nbucket = "fleet"\ncredentials_file = "missing"\n', "sync.credentials_file: cannot read"),
    ('[model]\nbundle = "no-such-bundle"\n', "model.bundle:"),
    ('[model]\nbackend = "tensorrt"\n', "model.backend: backend 'tensorrt': TensorRT is not installed"),
]


@pytest.mark.parametrize(("text", "problem"), REFUSED, ids=[problem[:40] for _, problem in REFUSED])
def test_run_refuses_what_check_config_refuses_with_the_same_line(tmp_path, capsys, text, problem):
    """Every config that run refuses for its content, check-config refuses first; run refuses it
    before starting anything, with one line and no traceback."""
    path = _write(tmp_path, text)
    assert main(["check-config", str(path)]) == 2
    checked = capsys.readouterr().out.strip().splitlines()
    assert any(problem in line for line in checked), checked
    assert main(["run", "--config", str(path)]) == 2
    refused = capsys.readouterr()
    assert refused.out == ""
    assert refused.err.count("\n") == 1 and refused.err.startswith("asl-edge: error: ")
    assert problem in refused.err and "Traceback" not in refused.err
