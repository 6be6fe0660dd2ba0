"""A model that does not fit the contract is refused with one line naming what is wrong."""

import numpy as np
import pytest
from conftest import CONTRACT_METADATA, build_model
from onnx import helper

from reelrestore.engine.model import ModelError, OnnxModel


def test_identity_model_loads_with_its_metadata_and_reports_the_real_provider(identity_model):
    model = OnnxModel(identity_model)
    assert model.spec.sample_rate == 48000 and model.spec.frame_length == 24000
    assert model.spec.n_bins == 1025 and model.has_cutoff
    assert model.provider == model.session.get_providers()[0]
    assert model.provider == "CPUExecutionProvider"  # no NVIDIA driver on the test machines
    assert len(model.sha256) == 64
    x = np.random.default_rng(0).standard_normal((3, 2, 1025, 47)).astype(np.float32)
    np.testing.assert_array_equal(model.run(x, np.zeros(3, np.float32)), x)


def test_model_without_cutoff_input_runs(tmp_path):
    model = OnnxModel(build_model(tmp_path / "m.onnx", with_cutoff=False))
    assert not model.has_cutoff
    x = np.ones((2, 2, 1025, 47), np.float32)
    assert model.run(x, np.zeros(2, np.float32)).shape == x.shape


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(drop="n_fft"), "lacks n_fft"),
        (dict(drop="model_version"), "lacks model_version"),
        (dict(set=("representation", "log_mag")), "representation: expected one of"),
        (dict(set=("window", "hamming")), "window: expected one of"),
        (dict(set=("sample_rate", "fast")), "sample_rate: expected int"),
        (dict(set=("frame_seconds", "-1")), "frame_seconds: expected a positive value"),
    ],
)
def test_bad_metadata_is_named(tmp_path, change, message):
    meta = dict(CONTRACT_METADATA)
    if "drop" in change:
        del meta[change["drop"]]
    else:
        key, value = change["set"]
        meta[key] = value
    with pytest.raises(ModelError, match=message):
        OnnxModel(build_model(tmp_path / "m.onnx", metadata=meta))


def test_wrong_number_of_bins_is_refused(tmp_path):
    with pytest.raises(ModelError, match=r"spectrum: expected shape \(None, 2, 1025, None\)"):
        OnnxModel(build_model(tmp_path / "m.onnx", bins=1024))


def test_unexpected_input_is_refused(tmp_path):
    with pytest.raises(ModelError, match=r"unexpected \['gain'\]"):
        OnnxModel(build_model(tmp_path / "m.onnx", extra_inputs=("gain",)))


def test_wrong_output_name_is_refused(tmp_path):
    path = tmp_path / "m.onnx"
    build_model(path, nodes=[helper.make_node("Identity", ["spectrum"], ["restored"])])
    import onnx

    proto = onnx.load(path)
    proto.graph.output[0].name = "out"
    proto.graph.node[0].output[0] = "out"
    onnx.save(proto, path)
    with pytest.raises(ModelError, match="expected 'restored'"):
        OnnxModel(path)


def test_a_file_that_is_not_onnx_is_refused_in_one_line(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("not a model\n")
    with pytest.raises(ModelError) as info:
        OnnxModel(path)
    assert "ONNX Runtime cannot load it" in str(info.value) and "\n" not in str(info.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        OnnxModel(tmp_path / "absent.onnx")


def test_the_engine_never_imports_torch():
    import subprocess
    import sys

    code = ("import sys, reelrestore.engine.cli, reelrestore.engine.live, reelrestore.engine.restore; "
            "from reelrestore.engine.cli import default_model_path; default_model_path(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
