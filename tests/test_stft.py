"""The numba STFT is the transform the models are trained on, and it inverts exactly."""

import numpy as np
import pytest
from scipy import signal

from reelrestore.engine.contract import DEFAULT_CONTRACT
from reelrestore.engine.stft import StftPlan, periodic_hann

C = DEFAULT_CONTRACT


def reference_stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """torch.stft(center=True, pad_mode='reflect', periodic Hann), written with numpy."""
    padded = np.pad(x, n_fft // 2, mode="reflect")
    n_frames = 1 + x.size // hop
    frames = np.stack([padded[t * hop : t * hop + n_fft] for t in range(n_frames)])
    return np.fft.rfft(frames * periodic_hann(n_fft), axis=-1).T  # (bins, T)


@pytest.fixture
def frames():
    return np.random.default_rng(0).standard_normal((3, C.frame_length))


def test_window_is_scipys_periodic_hann():
    np.testing.assert_allclose(periodic_hann(C.n_fft), signal.get_window("hann", C.n_fft, fftbins=True), atol=1e-15)


def test_stft_matches_numpy_reference_to_1e6(frames):
    plan = StftPlan.from_contract(C)
    spec = plan.forward(frames)
    assert spec.shape == (3, 2, C.n_bins, C.frames_per_frame)
    for b in range(3):
        ref = reference_stft(frames[b], C.n_fft, C.hop_length)
        np.testing.assert_allclose(spec[b, 0], ref.real, atol=1e-6)
        np.testing.assert_allclose(spec[b, 1], ref.imag, atol=1e-6)


def test_stft_matches_scipy_shorttimefft_inside_the_frame(frames):
    # scipy pads with zeros instead of reflecting: interior STFT frames must agree exactly.
    sft = signal.ShortTimeFFT(periodic_hann(C.n_fft), hop=C.hop_length, fs=C.sample_rate, fft_mode="onesided")
    ref = sft.stft(frames[0])  # frame t is centred on sample t * hop, like ours
    ref = ref * (-1.0) ** np.arange(C.n_bins)[:, None]  # scipy's phase is relative to the window centre
    ours = StftPlan.from_contract(C).forward(frames[:1])[0]
    first = -sft.p_min  # scipy's index of the frame centred on sample 0
    inside = C.n_fft // 2 // C.hop_length  # frames at either end whose window reaches the padding
    interior = slice(inside, C.frames_per_frame - inside)
    ref_interior = ref[:, first + inside : first + C.frames_per_frame - inside]
    np.testing.assert_allclose(ours[0][:, interior], ref_interior.real, atol=1e-6)
    np.testing.assert_allclose(ours[1][:, interior], ref_interior.imag, atol=1e-6)


@pytest.mark.parametrize("length,hop", [(24000, 512), (12345, 512), (24000, 256), (4096, 1024)])
def test_istft_reconstructs_perfectly(length, hop):
    x = np.random.default_rng(1).standard_normal((2, length))
    plan = StftPlan(C.n_fft, hop, length)
    np.testing.assert_allclose(plan.inverse(plan.forward(x)), x, atol=1e-9)


def test_float32_round_trip_stays_within_1e6():
    x = np.random.default_rng(2).uniform(-1, 1, (4, C.frame_length)).astype(np.float32)
    plan = StftPlan.from_contract(C)
    out = np.empty_like(x)
    spec = np.empty((4, *plan.spectrum_shape), dtype=np.float32)
    plan.inverse(plan.forward(x, out=spec), out=out)
    assert np.abs(out - x).max() < 1e-6


def test_kernels_write_into_preallocated_outputs(frames):
    plan = StftPlan.from_contract(C)
    spec = np.full((3, *plan.spectrum_shape), np.nan)
    back = np.full((3, C.frame_length), np.nan)
    assert plan.forward(frames, out=spec) is spec
    assert plan.inverse(spec, out=back) is back
    assert np.isfinite(back).all()


def test_too_short_frame_is_refused():
    with pytest.raises(ValueError, match="longer than n_fft/2"):
        StftPlan(C.n_fft, C.hop_length, C.n_fft // 2)


@pytest.mark.parametrize("length, shift", [(24000, 512), (24000, 1536), (2400, 512), (24000, 300)])
def test_sliding_frames_reuse_columns_and_equal_the_plain_transform(length, shift):
    # low latency: frame n + 1 starts one hop after frame n, so most columns are already known
    plan = StftPlan(2048, 512, length)
    x = np.random.default_rng(0).standard_normal((2, length + 9 * shift)).astype(np.float32)
    frames = np.stack([x[:, i * shift : i * shift + length] for i in range(10)])  # (10, 2, L)
    plain = plan.forward(frames.reshape(20, length)).reshape(10, 2, *plan.spectrum_shape)
    first = plan.forward_sliding(frames[:3], None, shift)
    rest = plan.forward_sliding(frames[3:], first[-1], shift)
    np.testing.assert_array_equal(np.concatenate([first, rest]), plain)


@pytest.mark.parametrize("lo, hi", [(22720, 23488), (23000, 24000), (10000, 11000), (0, 700), (0, 24000)])
def test_inverting_the_columns_that_reach_a_span_gives_the_full_inverse_there(lo, hi):
    plan = StftPlan(2048, 512, 24000)
    spec = plan.forward(np.random.default_rng(1).standard_normal((2, 24000)).astype(np.float32))
    first, last, part = plan.span_plan(lo, hi)
    assert last - first <= 6 or (first, last) == (0, plan.n_frames)
    got = part.inverse(np.ascontiguousarray(spec[..., first:last]))
    offset = first * plan.hop
    np.testing.assert_array_equal(got[:, lo - offset : hi - offset], plan.inverse(spec)[:, lo:hi])
