"""The torch transforms models train and export with are the engine's, number for number.

A model learns from `reelrestore.models.spectral` and runs on `reelrestore.engine`: if the
two STFTs or the two merge-gain curves drifted apart, a model would restore spectra it
never saw, or keep a different band than the engine keeps.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reelrestore.engine.band import merge_gains  # noqa: E402
from reelrestore.engine.contract import DEFAULT_CONTRACT, Contract  # noqa: E402
from reelrestore.engine.stft import StftPlan  # noqa: E402
from reelrestore.models.spectral import ConvSTFT, istft, keep_gains, stft  # noqa: E402

CONTRACTS = [DEFAULT_CONTRACT, Contract(sample_rate=44100, n_fft=1024, hop_length=256, frame_seconds=0.25)]


def frames_of(contract: Contract, batch: int = 3, seed: int = 0) -> np.ndarray:
    """(batch, frame_length) float32: noise with a strong low partial, like a cut reel."""
    rng = np.random.default_rng(seed)
    t = np.arange(contract.frame_length) / contract.sample_rate
    tone = 0.5 * np.sin(2 * np.pi * 220.0 * t)
    return (tone + 0.1 * rng.standard_normal((batch, t.size))).astype(np.float32)


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| relative to the peak of want."""
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("contract", CONTRACTS, ids=["default", "44k1-1024"])
def test_torch_stft_is_the_engines_stft(contract):
    x = frames_of(contract)
    engine = StftPlan.from_contract(contract).forward(x)  # (B, 2, bins, T)
    ours = stft(torch.from_numpy(x), contract.n_fft, contract.hop_length).numpy()
    assert ours.shape == engine.shape == (3, 2, contract.n_bins, contract.frames_per_frame)
    assert rel_error(ours, engine) < 1e-5


@pytest.mark.parametrize("contract", CONTRACTS, ids=["default", "44k1-1024"])
def test_torch_istft_is_the_engines_inverse(contract):
    plan = StftPlan.from_contract(contract)
    spectrum = plan.forward(frames_of(contract, seed=1))
    engine = plan.inverse(spectrum)  # (B, frame_length)
    ours = istft(torch.from_numpy(spectrum), contract.frame_length, contract.n_fft, contract.hop_length).numpy()
    assert rel_error(ours, engine) < 1e-5


def test_conv_stft_in_exported_graphs_is_the_engines_stft():
    contract = DEFAULT_CONTRACT
    plan = StftPlan.from_contract(contract)
    x = frames_of(contract, seed=2)
    conv = ConvSTFT(contract.n_fft, contract.hop_length)
    with torch.no_grad():
        spectrum = conv(torch.from_numpy(x)).numpy()
        back = conv.inverse(torch.from_numpy(plan.forward(x)), contract.frame_length).numpy()
    assert rel_error(spectrum, plan.forward(x)) < 1e-5
    assert rel_error(back, plan.inverse(plan.forward(x))) < 1e-5


@pytest.mark.parametrize("fade_bins", [0, 1, 4, 10, 33])
def test_torch_keep_gains_are_the_engines_merge_gains(fade_bins):
    n_bins = DEFAULT_CONTRACT.n_bins
    # whole and fractional cutoff bins, at the ends of the band too; float32, as models get them
    cutoff_bins = np.array([0.0, 3.0, 42.5, 127.3, 511.99, 1000.0, n_bins - 1.0, n_bins + 5.0], np.float32)
    engine = merge_gains(cutoff_bins, n_bins, fade_bins)  # (B, bins) float32
    ours = keep_gains(torch.from_numpy(cutoff_bins), n_bins, fade_bins).numpy()
    assert ours.shape == engine.shape and ours.dtype == engine.dtype
    np.testing.assert_allclose(ours, engine, rtol=0, atol=1e-6)
