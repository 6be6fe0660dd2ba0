"""The curve reader: the engine's numpy net is the trained torch net, the recipe runs end to
end, the shipped reader tells a steep cut from a gentle one in real speech, and the engine's
lift follows the curve it reads where neither the reel's floor nor a slit's lobes read one."""

from pathlib import Path

import numpy as np
import pytest

from reelrestore.engine import curvereader, locator, skirt
from reelrestore.engine.contract import DEFAULT_CONTRACT
from reelrestore.engine.stft import StftPlan
from reelrestore.training import curvereader as training
from reelrestore.training import locator as locator_training
from reelrestore.training.degrade import lowpass, lowpass_response, minus3db_hz

from conftest import alsa_speech_with_hiss
from test_locator import music_like

SR, FRAME, BIN_HZ = 48000, 24000, 48000 / 2048
ALSA = Path("/usr/share/sounds/alsa")


def features(x: np.ndarray) -> np.ndarray:
    profiles = locator_training.reel_profiles(x.astype(np.float32), StftPlan.from_contract(DEFAULT_CONTRACT), FRAME)
    return locator.features(profiles, BIN_HZ)


def test_the_engine_runs_the_trained_net_layer_for_layer():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cfg = training.CurveTrainConfig(width=8, dilations=(1, 3), kernel=5)
    net = training._torch_net(cfg.width, cfg.dilations, cfg.kernel)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((3, locator.CHANNELS, locator.grid_hz().size)).astype(np.float32)
    cutoffs = np.array([300.0, 2000.0, 7000.0])
    x = np.concatenate([feats, curvereader.cutoff_channel(cutoffs)], axis=1)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy() * curvereader.DB_SCALE
    reader = curvereader.CurveReader(net.weights(), training.reader_config(cfg))
    for f, hz, w in zip(feats, cutoffs, want):
        np.testing.assert_allclose(reader.loss_db(f, hz), w, rtol=1e-4, atol=1e-3)
        assert reader.loss_db(f, hz).max() <= 0.0  # a loss, never a gain


def test_a_reader_whose_grid_differs_from_the_engines_is_refused():
    config = dict(curvereader.CurveReader.load().config, grid=[50.0, 20000.0, 24])
    with pytest.raises(ValueError, match="retrain it"):
        curvereader.CurveReader(curvereader.CurveReader.load().weights, config)


def test_the_recipe_builds_examples_and_trains_a_reader_the_engine_loads(tmp_path, capsys):
    pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    cfg = locator_training.LocatorDataConfig(seconds=(3.0, 4.0), p_uncut=0.0, hiss_where=(1.0, 0.0, 0.0, 0.0))
    grids, losses, true_hz = [], [], []
    for i in range(8):
        x, hz, note, wall, cut = locator_training.damage_with_cut(music_like(4.0, i), rng, cfg)
        assert cut is not None and hz == pytest.approx(minus3db_hz(cut.shape, cut.order, cut.design_hz, SR,
                                                                   cut.zero_phase, cut.spread))
        profiles = locator_training.reel_profiles(x, StftPlan.from_contract(DEFAULT_CONTRACT), FRAME)
        grids.append(locator.grid_db(profiles, BIN_HZ).astype(np.float16))
        amplitude = lowpass_response(cut.shape, cut.order or 2, cut.design_hz, locator.grid_hz(), SR, cut.zero_phase,
                                     cut.spread)
        losses.append(20 * np.log10(np.maximum(amplitude, 1e-12)))
        true_hz.append(hz)
    data = tmp_path / "data.npz"
    np.savez(data, grid=np.concatenate(grids), frames=np.array([len(g) for g in grids]), loss=np.array(losses),
             true_hz=np.array(true_hz), valid=np.arange(8) % 4 == 0, notes=np.array(["s"] * 8), config=np.array("{}"))
    out = tmp_path / "reader.npz"
    figures = training.train([data], out, training.CurveTrainConfig(width=8, dilations=(1,), batch=2, epochs=1),
                             threads=1)
    reader = curvereader.CurveReader.load(out)
    assert reader.config["validation"] == figures and figures["n"] == 2 and figures["mae_db"] >= 0.0
    assert reader.loss_db(features(music_like(4.0, 9)), 1000.0).shape == locator.grid_hz().shape
    capsys.readouterr()  # the training's progress
    with pytest.raises(SystemExit) as stop:
        training.main(["train", "--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "r.npz")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "curvereader build" in err and not (tmp_path / "r.npz").exists()


def test_a_reading_is_a_loss_that_only_grows():
    # A Butterworth-8's loss read to 100 dB, past which the reading rises again (the net's word
    # where the cut left nothing to read): the family is fitted to a loss that stays down, and
    # the curve found is as steep as the cut, not a gentle one that meets the rise half-way.
    grid = locator.grid_hz()
    true = 20 * np.log10(np.maximum(lowpass_response("butterworth", 8, 2000.0, grid), 1e-12))
    reading = np.maximum(true, -100.0)
    deep = np.flatnonzero(reading <= -100.0)
    reading[deep] = np.linspace(-100.0, -40.0, deep.size)
    read = skirt.fit_reading(minus3db_hz("butterworth", 8, 2000.0), BIN_HZ, 1025, grid, reading)
    assert read.read_from == "the curve reader" and read.depth_db == skirt.READING_FOLLOW_DB
    n = float(read.name.split(" n")[1].split()[0])
    assert read.name.startswith("butterworth-zero-phase") and n >= 6, read.name


@pytest.mark.skipif(not ALSA.is_dir(), reason="needs alsa-utils (/usr/share/sounds/alsa/*.wav)")
@pytest.mark.parametrize("design", [700.0, 2500.0])
def test_the_shipped_reader_tells_a_steep_cut_from_a_gentle_one_in_real_speech(design):
    # Real speech with its hiss (-60 dBFS) cut together by a zero-phase Butterworth-2 and -8
    # made at the same frequency: the reader reads each cut's loss over the octave over its
    # -3 dB point within a few dB, and the curve fitted to its reading follows the cut.
    reader = curvereader.CurveReader.load()
    reference = alsa_speech_with_hiss()
    grid = locator.grid_hz()
    for order in (2, 8):
        cutoff = minus3db_hz("butterworth", order, design)
        reading = reader.loss_db(features(lowpass(reference, design, "butterworth", order)), cutoff)
        true = 20 * np.log10(np.maximum(lowpass_response("butterworth", order, design, grid), 1e-12))
        octave = (grid >= cutoff) & (grid <= 2 * cutoff) & (true > -60.0)
        assert np.abs(reading - true)[octave].max() < 6.0, (order, np.round(reading[octave] - true[octave], 1))
        read = skirt.fit_reading(cutoff, BIN_HZ, 1025, grid, reading)
        k = np.arange(1025)
        near = (k * BIN_HZ >= 1.25 * cutoff) & (k * BIN_HZ <= 2 * cutoff)
        true_bins = 20 * np.log10(np.maximum(lowpass_response("butterworth", order, design, k[near] * BIN_HZ), 1e-12))
        assert np.abs(read.curve[near] * 10 / np.log(10) - true_bins).max() < 6.0, (order, read.name)


@pytest.mark.parametrize("order, design", [(2, 1000.0), (4, 3000.0), (2, 3000.0)])
def test_a_reel_whose_hiss_went_with_the_cut_is_lifted_by_the_curve_the_reader_reads(monkeypatch, order, design):
    # Real speech with a hiss at -60 dBFS, cut together by a zero-phase Butterworth. 2.8 s are
    # too short to show the hiss in its pauses (`cutoff.HISS_SEEN_SECONDS`: its floor reads no
    # curve) and a Butterworth shows no slit's lobes, so the lift follows the curve the reader
    # reads, and the band above the cut comes back closer than by the model's word (the noise
    # fill's here).
    from reelrestore.engine import stream as stream_module
    from reelrestore.engine.restore import restore_array
    from reelrestore.engine.stream import StreamConfig, StreamRestorer
    from reelrestore.training.baseline import BaselineModel
    from reelrestore.training.metrics import lsd_bands

    reference = alsa_speech_with_hiss()[: int(2.8 * SR)]
    damaged = lowpass(reference, design, "butterworth", order).astype(np.float32)[None]
    cutoff = minus3db_hz("butterworth", order, design)

    def restored():
        out, decisions = restore_array(damaged, BaselineModel(), StreamConfig(cutoff_hz=cutoff))
        restorer = StreamRestorer(BaselineModel(), 1, StreamConfig(cutoff_hz=cutoff))
        restorer.lock_cutoffs(decisions)
        return lsd_bands(reference, out[0], SR, cutoff, bands=("above",))["above"], restorer.lift_curve(decisions[0])

    lsd, read = restored()
    assert read is not None and read["read_from"] == "the curve reader", read
    monkeypatch.setattr(stream_module, "fit_reading", lambda *args: None)  # the model's word
    lsd_word, read_word = restored()
    assert read_word is None
    # (measured 0.706 against 0.776 at 1 kHz, 0.879 against 1.064 and 0.662 against 0.990 at 3 kHz)
    assert lsd < lsd_word - 0.05, (lsd, lsd_word)
