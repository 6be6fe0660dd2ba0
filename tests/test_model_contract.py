"""The contract is one object the metadata carries; a model that does not fit it is
refused with one line naming what is wrong."""

import numpy as np
import pytest
from conftest import CONTRACT_METADATA, build_model
from onnx import helper

from reelrestore.engine.contract import DEFAULT_CONTRACT, Contract, ContractError, pop_contract
from reelrestore.engine.model import ModelError, ModelSpec, OnnxModel
from reelrestore.engine.stft import StftPlan

C = DEFAULT_CONTRACT
SHAPE = (2, C.n_bins, C.frames_per_frame)  # one frame's spectrum


def test_the_default_contract_is_the_one_design_md_states():
    assert (C.sample_rate, C.n_fft, C.hop_length, C.window, C.frame_seconds, C.representation) == (
        48000, 2048, 512, "hann", 0.5, "complex_ri")
    assert (C.n_bins, C.frame_length, C.frames_per_frame, C.bin_hz) == (1025, 24000, 47, 48000 / 2048)


@pytest.mark.parametrize("contract", [C, Contract(44100, 1024, 256, frame_seconds=0.25), Contract(hop_length=1024)])
def test_a_contract_survives_metadata_and_sizes_the_engines_stft(contract):
    meta = contract.to_metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert Contract.from_metadata({**meta, "architecture": "x"}) == contract
    plan = StftPlan.from_contract(contract)
    assert plan.spectrum_shape == (2, contract.n_bins, contract.frames_per_frame)
    assert plan.length == contract.frame_length


@pytest.mark.parametrize("values,message", [
    (dict(n_fft=0), "n_fft: expected a positive int, got 0"),
    (dict(sample_rate=48000.5), "sample_rate: expected a positive int"),
    (dict(frame_seconds=0), "frame_seconds: expected a value above 0"),
    (dict(frame_seconds=1e9), "at most 10 s"),
    (dict(frame_seconds=float("nan")), "frame_seconds: expected a value above 0"),
    (dict(sample_rate=10**9), "expected at most 768000 Hz"),
    (dict(window="hamming"), "window: expected one of"),
    (dict(hop_length=2048), "do not make a valid STFT"),
    (dict(frame_seconds=0.02), "do not make a valid STFT"),
])
def test_a_contract_that_makes_no_valid_transform_is_refused_in_one_line(values, message):
    with pytest.raises(ContractError, match=message) as info:
        Contract(**values)
    assert "\n" not in str(info.value)


def test_a_model_config_takes_its_contract_from_a_table_or_from_flat_keys_of_old_checkpoints():
    table = {"contract": {"n_fft": 1024, "hop_length": 256}, "width": 8}
    assert pop_contract(table) == Contract(n_fft=1024, hop_length=256) and table == {"width": 8}
    flat = {"sample_rate": 48000, "n_fft": 2048, "hop_length": 512, "width": 8}
    assert pop_contract(flat) == C and flat == {"width": 8}
    assert pop_contract({"width": 8}) == C
    with pytest.raises(ContractError, match="in one place"):
        pop_contract({"contract": {}, "n_fft": 1024})
    with pytest.raises(ContractError, match="unknown contract keys"):
        pop_contract({"contract": {"nfft": 1024}})


def test_the_spec_is_the_contract_plus_what_the_model_is():
    spec = ModelSpec.from_metadata(CONTRACT_METADATA)
    assert spec.contract == C and type(spec.contract) is Contract
    assert (spec.architecture, spec.model_version) == ("identity", "test")
    assert spec.to_metadata() == C.to_metadata()  # the contract's keys only


def test_identity_model_loads_with_its_metadata_and_reports_the_real_provider(identity_model):
    model = OnnxModel(identity_model)
    assert model.spec.contract == C and model.has_cutoff
    assert model.provider == model.session.get_providers()[0]
    assert model.provider == "CPUExecutionProvider"  # no NVIDIA driver on the test machines
    assert len(model.sha256) == 64
    x = np.random.default_rng(0).standard_normal((3, *SHAPE)).astype(np.float32)
    np.testing.assert_array_equal(model.run(x, np.zeros(3, np.float32)), x)


def test_a_live_model_does_not_busy_wait_between_calls(identity_model):
    # ONNX Runtime spins its threads between runs unless told not to; live, that spinning
    # takes the cores the sound server and the device callback need (restore-stream asks
    # for spin=False whenever it plays or listens).
    key = "session.intra_op.allow_spinning"
    quiet = OnnxModel(identity_model, device="cpu", spin=False).session.get_session_options()
    assert quiet.get_session_config_entry(key) == "0"
    default = OnnxModel(identity_model, device="cpu").session.get_session_options()
    with pytest.raises(Exception):
        default.get_session_config_entry(key)  # unset: the runtime's default, spinning


def test_model_without_cutoff_input_runs(tmp_path):
    model = OnnxModel(build_model(tmp_path / "m.onnx", with_cutoff=False))
    assert not model.has_cutoff
    x = np.ones((2, *SHAPE), np.float32)
    assert model.run(x, np.zeros(2, np.float32)).shape == x.shape


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(drop="n_fft"), "lacks n_fft"),
        (dict(drop="model_version"), "lacks model_version"),
        (dict(set=("representation", "log_mag")), "representation: expected one of"),
        (dict(set=("window", "hamming")), "window: expected one of"),
        (dict(set=("sample_rate", "fast")), "sample_rate: expected int"),
        (dict(set=("frame_seconds", "-1")), "frame_seconds: expected a value above 0"),
        (dict(set=("hop_length", "4096")), "do not make a valid STFT"),
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
    with pytest.raises(ModelError, match=rf"spectrum: expected shape \(None, 2, {C.n_bins}, None\)"):
        OnnxModel(build_model(tmp_path / "m.onnx", bins=C.n_bins - 1))


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
