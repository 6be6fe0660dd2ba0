"""Degradation chain: each stage does what its parameters say, the chain is seeded, and
restore-degrade writes what the library makes."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from scipy import signal

from reelrestore.training.degrade import (
    N_FFT, SHAPES, SR, THESIS_CUTOFFS_HZ, DegradeConfig, DegradeRanges, degrade, level_envelope, lowpass,
    lowpass_brickwall, lowpass_butterworth, sample_degrade_config, slit_kernel,
)
from reelrestore.training.degrade_cli import main as degrade_main


def noise(seconds=1.0, seed=0, level=0.1):
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * level).astype(np.float32)


def band_db(x, lo, hi):
    """Power in [lo, hi) Hz from a Hann-windowed Welch estimate (no edge leakage)."""
    f, p = signal.welch(x, SR, nperseg=4096)
    return 10 * np.log10(p[(f >= lo) & (f < hi)].sum())


def gain_db(h, f_hz):
    """Magnitude response in dB of impulse response h at f_hz."""
    return 20 * np.log10(abs(np.sum(h * np.exp(-2j * np.pi * f_hz * np.arange(h.size) / SR))))


def plain(**kw):
    """Config with only a low-pass unless told otherwise."""
    return DegradeConfig(**{"hiss_db": None, "cutoff_hz": 8000.0, "shape": "brickwall", **kw})


@pytest.mark.parametrize("cutoff", [150.0, 500.0, 2000.0, 8000.0])
def test_brickwall_removes_over_40db_above_cutoff_and_keeps_below(cutoff):
    x = noise()
    y = lowpass_brickwall(x, cutoff)
    assert y.shape == x.shape
    assert band_db(y, cutoff + 100, SR / 2) - band_db(x, cutoff + 100, SR / 2) < -40
    assert abs(band_db(y, 0, cutoff - 100) - band_db(x, 0, cutoff - 100)) < 0.1


@pytest.mark.parametrize("cutoff", [150.0, 1000.0, 3000.0, 8000.0])
def test_butterworth_removes_over_40db_above_cutoff_and_keeps_below(cutoff):
    # Order 8 zero-phase is -6 dB AT the cutoff by definition; measure from 1.5x on.
    x = noise()
    y = lowpass_butterworth(x, cutoff, order=8)
    assert band_db(y, 1.5 * cutoff, SR / 2) - band_db(x, 1.5 * cutoff, SR / 2) < -40
    assert abs(band_db(y, 0, cutoff / 2) - band_db(x, 0, cutoff / 2)) < 0.1


def test_butterworth_is_minus_6db_zero_phase_and_minus_3db_causal_at_cutoff():
    impulse = np.zeros(8192)
    impulse[4096] = 1.0
    assert gain_db(lowpass_butterworth(impulse, 1000.0, 4), 1000.0) == pytest.approx(-6.02, abs=0.1)
    assert gain_db(lowpass_butterworth(impulse, 1000.0, 4, zero_phase=False), 1000.0) == pytest.approx(-3.01, abs=0.1)


@pytest.mark.parametrize("cutoff", [150.0, 1000.0, 8000.0])
def test_slit_is_gentle_sinc2_rolloff_minus_6db_at_cutoff(cutoff):
    k = slit_kernel(cutoff)
    assert np.all(k >= 0) and np.allclose(k, k[::-1]) and k.sum() == pytest.approx(1.0)  # no flips, zero phase
    assert gain_db(k, cutoff) == pytest.approx(-6.02, abs=0.05)
    assert -2.5 < gain_db(k, cutoff / 2) < -0.5  # gentle: audible loss well below the cutoff
    assert gain_db(k, 3 * cutoff) < -18  # but the highs are gone
    x = noise()
    y = lowpass(x, cutoff, "slit")
    assert band_db(y, 2 * cutoff, SR / 2) - band_db(x, 2 * cutoff, SR / 2) < -20


@pytest.mark.parametrize("level_db", [-60.0, -50.0, -40.0])
def test_hiss_level_matches_request_and_is_kept_in_target(level_db):
    clean = noise(seed=1) * 0.5
    cfg = plain(hiss_db=level_db, cutoff_hz=2000.0, shape="butterworth")
    damaged, target, _ = degrade(clean, cfg, np.random.default_rng(0))
    hiss = target.astype(np.float64) - clean
    assert 20 * np.log10(np.sqrt(np.mean(hiss ** 2))) == pytest.approx(level_db, abs=1.0)
    # damaged = damage(clean + hiss): the low-passed target, hiss included
    np.testing.assert_allclose(damaged, lowpass_butterworth(target, 2000.0, 8), atol=1e-6)


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_hum_peaks_at_mains_frequency_and_its_harmonics(mains):
    cfg = plain(hum_hz=mains, hum_db=-40.0, hum_harmonics=4)
    damaged, target, _ = degrade(np.zeros(2 * SR, np.float32), cfg, np.random.default_rng(0))
    assert not target.any()  # hum is damage, not part of the recording
    spec = np.abs(np.fft.rfft(damaged))
    freqs = np.fft.rfftfreq(damaged.size, 1 / SR)
    assert freqs[np.argmax(spec)] == pytest.approx(mains)
    floor = np.median(spec)
    for k in range(1, 5):
        assert spec[np.argmin(abs(freqs - k * mains))] > 1000 * floor
    fundamental_rms = 2 * spec[np.argmin(abs(freqs - mains))] / damaged.size / np.sqrt(2)
    assert 20 * np.log10(fundamental_rms) == pytest.approx(-40, abs=0.5)


def test_clicks_land_where_info_says_and_nowhere_else():
    cfg = plain(clicks_per_s=10.0, click_db=-6.0)
    damaged, target, info = degrade(np.zeros(2 * SR, np.float32), cfg, np.random.default_rng(3))
    starts = info["click_samples"]
    assert 5 <= len(starts) <= 40 and not target.any()
    near = np.zeros(damaged.size, bool)
    for s in starts:  # a click lasts at most 2 ms; the STFT low-pass smears it by one frame
        near[max(0, s - N_FFT):s + 96 + N_FFT] = True
    assert np.max(np.abs(damaged[near])) > 0.1
    assert np.max(np.abs(damaged[~near]), initial=0.0) < 1e-3


def test_crackle_adds_many_small_impulses():
    cfg = plain(crackle_per_s=300.0, crackle_db=-40.0, cutoff_hz=20000.0)
    damaged, _, _ = degrade(np.zeros(SR, np.float32), cfg, np.random.default_rng(0))
    peaks, _ = signal.find_peaks(np.abs(damaged), height=1e-4)
    assert 150 < peaks.size < 450
    assert np.max(np.abs(damaged)) < 10 ** (-40 / 20) * 1.6


@pytest.mark.parametrize("wow,flutter,rate", [(1.0, 0.0, 2.0), (0.0, 0.5, 24.0)])
def test_wow_and_flutter_modulate_pitch_by_requested_depth(wow, flutter, rate):
    t = np.arange(2 * SR) / SR
    clean = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    cfg = plain(wow_percent=wow, wow_hz=rate, flutter_percent=flutter, flutter_hz=rate)
    damaged, target, _ = degrade(clean, cfg, np.random.default_rng(0))
    phase = np.unwrap(np.angle(signal.hilbert(target.astype(np.float64))))  # float64: phase reaches 1e4 rad
    inst = np.convolve(np.diff(phase) * SR / (2 * np.pi), np.ones(48) / 48, "valid")  # 1 ms smoothing
    inst = inst[SR // 4:-SR // 4]  # away from the Hilbert edges
    expected = 1000 * (wow + flutter) / 100
    assert np.max(np.abs(inst - 1000)) == pytest.approx(expected, rel=0.15)
    np.testing.assert_allclose(damaged, lowpass_brickwall(target, 8000.0), atol=1e-5)  # same warp in both


def test_the_warp_reads_between_samples_by_the_lanczos_formula():
    """The warp's read (sines by identity, not per tap) is the textbook Lanczos sum
    sum_j x[i0 + j] sinc(d) sinc(d / 8) / sum_j sinc(d) sinc(d / 8), d = frac - j, edges
    held; on a sample it returns that sample; a band-limited tone read half a sample late
    is that tone delayed."""
    from reelrestore.training.degrade import _interpolate

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 500))
    pos = np.concatenate([rng.uniform(-20, 520, 300), np.arange(0.0, 500.0, 7.0)])  # past both edges, on samples
    i0 = np.floor(pos).astype(int)
    taps = np.arange(-7, 9)
    d = (pos - i0)[:, None] - taps
    w = np.sinc(d) * np.sinc(d / 8)
    expected = (x[:, np.clip(i0[:, None] + taps, 0, 499)] * w).sum(-1) / w.sum(-1)
    np.testing.assert_allclose(_interpolate(x, pos), expected, rtol=0, atol=1e-12)
    on = pos[300:].astype(int)
    assert np.array_equal(_interpolate(x, pos[300:]), x[:, on])
    n = np.arange(2000)
    tone = np.sin(2 * np.pi * 0.05 * n)
    late = _interpolate(tone, n - 0.5)[100:-100]
    np.testing.assert_allclose(late, np.sin(2 * np.pi * 0.05 * (n - 0.5))[100:-100], atol=2e-3)


def test_level_envelope_stays_within_depth_and_changes_smoothly():
    env_db = 20 * np.log10(level_envelope(3 * SR, 6.0, 2.0, np.random.default_rng(0)))
    assert env_db.min() >= -6.0 - 1e-9 and env_db.max() <= 6.0 + 1e-9
    assert env_db.max() - env_db.min() > 3.0
    assert np.max(np.abs(np.diff(env_db))) < 0.01  # no zipper steps


def test_degrade_is_deterministic_given_seed_and_stages_draw_independently():
    clean = noise(0.5, seed=2)
    cfg = DegradeConfig(hiss_db=-50.0, clicks_per_s=5.0, crackle_per_s=50.0, hum_hz=50.0, wow_percent=0.2,
                        flutter_percent=0.05, level_db=3.0, shape="slit", cutoff_hz=1000.0)
    a = degrade(clean, cfg, np.random.default_rng(7))
    b = degrade(clean, cfg, np.random.default_rng(7))
    c = degrade(clean, cfg, np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    assert a[0].dtype == a[1].dtype == np.float32 and a[0].shape == clean.shape
    no_clicks = degrade(clean, DegradeConfig(**{**cfg.to_dict(), "clicks_per_s": 0.0}), np.random.default_rng(7))
    assert np.array_equal(no_clicks[1], a[1])  # same hiss, warp and level: only the clicks changed


def test_multichannel_shares_events_but_not_hiss():
    clean = np.stack([noise(0.5, seed=3)] * 2)
    cfg = plain(hiss_db=-40.0, clicks_per_s=20.0, click_db=-3.0)
    damaged, target, _ = degrade(clean, cfg, np.random.default_rng(0))
    assert damaged.shape == (2, clean.shape[1])
    assert not np.allclose(target[0], target[1])  # independent hiss per channel
    click_part = damaged - lowpass_brickwall(target, 8000.0)
    np.testing.assert_allclose(click_part[0], click_part[1], atol=1e-5)  # same dust on both


def test_sample_degrade_config_covers_thesis_cutoffs_range_and_shapes():
    rng = np.random.default_rng(0)
    cfgs = [sample_degrade_config(rng) for _ in range(400)]
    cutoffs = {c.cutoff_hz for c in cfgs}
    assert set(THESIS_CUTOFFS_HZ) <= cutoffs
    assert all(150.0 <= c <= 8000.0 for c in cutoffs) and max(cutoffs) > 4000.0
    assert {c.shape for c in cfgs} == set(SHAPES)
    assert 0.1 < np.mean([c.hum_hz > 0 for c in cfgs]) < 0.5
    again = [sample_degrade_config(np.random.default_rng(0)) for _ in range(1)]
    assert again[0] == cfgs[0]
    only = sample_degrade_config(rng, DegradeRanges(p_thesis_cutoff=1.0, thesis_cutoffs_hz=(250.0,), shapes=("slit",)))
    assert only.cutoff_hz == 250.0 and only.shape == "slit"


def test_bad_parameters_and_input_fail_with_expected_got():
    with pytest.raises(ValueError, match="expected shape"):
        DegradeConfig(shape="gaussian")
    with pytest.raises(ValueError, match="expected 0 < cutoff_hz"):
        DegradeConfig(cutoff_hz=30000.0)
    with pytest.raises(ValueError, match="expected clean as a float array"):
        degrade(np.zeros(100, np.int16), DegradeConfig(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="expected finite"):
        degrade(np.full(100, np.nan, np.float32), DegradeConfig(), np.random.default_rng(0))


# ----------------------------------------------------------------------- restore-degrade


def test_restore_degrade_writes_damaged_and_target_and_is_seeded(tmp_path):
    clean = noise(1.0, seed=4)
    sf.write(tmp_path / "clean.wav", clean, SR, subtype="FLOAT")
    args = [str(tmp_path / "clean.wav"), "-o", str(tmp_path / "d.wav"), "--cutoff", "2000", "--hiss", "-50dB",
            "--shape", "butterworth", "--order", "8", "--clicks", "5", "--hum", "50", "--wow", "0.1",
            "--seed", "0", "--target", str(tmp_path / "t.wav")]
    result = CliRunner().invoke(degrade_main, args)
    assert result.exit_code == 0, result.output
    damaged, sr = sf.read(tmp_path / "d.wav", dtype="float32")
    target, _ = sf.read(tmp_path / "t.wav", dtype="float32")
    assert sr == SR and damaged.shape == target.shape == clean.shape
    assert band_db(damaged, 3000, 20000) - band_db(target, 3000, 20000) < -40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.wav", "d.wav", "t.wav"]  # no temp files left
    CliRunner().invoke(degrade_main, args[:2] + [str(tmp_path / "d2.wav")] + args[3:-2])
    assert np.array_equal(sf.read(tmp_path / "d2.wav", dtype="float32")[0], damaged)


def test_restore_degrade_resamples_other_rates_to_48k(tmp_path):
    sf.write(tmp_path / "c.flac", noise(0.5)[:22050], 44100)
    result = CliRunner().invoke(degrade_main, [str(tmp_path / "c.flac"), "-o", str(tmp_path / "d.flac")])
    assert result.exit_code == 0, result.output
    info = sf.info(str(tmp_path / "d.flac"))
    assert info.samplerate == SR and info.frames == SR // 2


def test_restore_degrade_speaks_the_engines_units_writes_normal_modes_and_answers_help_fast(tmp_path):
    from reelrestore.training import degrade as degrade_module
    from reelrestore.training import degrade_cli

    assert (degrade_cli.SHAPES, degrade_cli.SR) == (degrade_module.SHAPES, degrade_module.SR)
    sf.write(tmp_path / "c.wav", noise(0.5), SR)
    outs = []
    for cutoff, hum_level in (("3k", "-40dB"), ("3000", "-40"), ("3kHz", "-40 dB")):
        outs.append(tmp_path / f"d{len(outs)}.wav")
        result = CliRunner().invoke(degrade_main, [str(tmp_path / "c.wav"), "-o", str(outs[-1]), "--cutoff", cutoff,
                                                   "--hum", "50Hz", "--hum-level", hum_level])
        assert result.exit_code == 0, result.output
    first = sf.read(outs[0])[0]
    assert all(np.array_equal(sf.read(o)[0], first) for o in outs[1:])  # one syntax, one meaning
    umask = os.umask(0)
    os.umask(umask)
    assert (outs[0].stat().st_mode & 0o777) == 0o666 & ~umask  # not the temporary file's 0600
    code = ("import sys; from click.testing import CliRunner; from reelrestore.training.degrade_cli import main; "
            "r = CliRunner().invoke(main, ['--help']); "
            "print(r.exit_code, [m for m in ('numpy', 'scipy', 'soundfile') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0 []"


@pytest.mark.parametrize("extra,message", [
    (["--hiss", "loud"], "expected a level like -40dB"),
    (["--hum-level", "+3dB"], "at or below 0 dBFS"),
    (["--cutoff", "warm"], "expected a frequency like 3000, 3k or 3kHz"),
    (["--shape", "gaussian"], "gaussian"),
    (["--cutoff", "30000"], "30000"),
])
def test_restore_degrade_rejects_bad_options(tmp_path, extra, message):
    sf.write(tmp_path / "c.wav", noise(0.1), SR)
    result = CliRunner().invoke(degrade_main, [str(tmp_path / "c.wav"), "-o", str(tmp_path / "d.wav"), *extra])
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "d.wav").exists()


def test_restore_degrade_one_line_error_for_unreadable_input(tmp_path):
    (tmp_path / "bad.wav").write_text("not audio")
    result = CliRunner().invoke(degrade_main, [str(tmp_path / "bad.wav"), "-o", str(tmp_path / "d.wav")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "expected a readable audio file" in result.output


def test_hiss_after_the_cut_stays_broadband_and_is_in_the_target():
    clean = noise(2.0, seed=3, level=0.1)
    cfg = plain(cutoff_hz=2000.0, shape="butterworth", hiss_after_db=-50.0)
    damaged, target, _ = degrade(clean, cfg, np.random.default_rng(0))
    late = damaged - lowpass(clean, 2000.0, "butterworth", 8)
    assert np.allclose(target - clean, late, atol=1e-6)  # the same hiss, in both
    rms_db = 10 * np.log10(np.mean(late.astype(np.float64) ** 2))
    assert rms_db == pytest.approx(-50.0, abs=0.5)
    # above the cut the damaged band is that hiss, flat, not cut away
    assert band_db(damaged, 8000, 16000) - band_db(damaged, 4000, 8000) == pytest.approx(3.0, abs=1.0)
    off = degrade(clean, plain(cutoff_hz=2000.0, shape="butterworth"), np.random.default_rng(0))[0]
    assert band_db(off, 8000, 16000) < band_db(damaged, 8000, 16000) - 60


@pytest.mark.parametrize("shape, order", [("butterworth", 2), ("butterworth", 8), ("slit", 8)])
def test_info_reports_the_minus_3db_point_of_the_response_applied(shape, order):
    clean = np.zeros(SR, np.float32)
    clean[SR // 2] = 1.0  # an impulse: the damaged signal is the impulse response
    _, _, info = degrade(clean, plain(cutoff_hz=3000.0, shape=shape, order=order), np.random.default_rng(0))
    f3 = info["cutoff_3db_hz"]
    assert info["cutoff_hz"] == 3000.0 and 0.5 * 3000 < f3 < 3000  # zero-phase: -6 dB at the design
    y = degrade(clean, plain(cutoff_hz=3000.0, shape=shape, order=order), np.random.default_rng(0))[0]
    assert gain_db(y.astype(np.float64), f3) == pytest.approx(-3.0, abs=0.05)
    causal = degrade(clean, plain(cutoff_hz=3000.0, shape="butterworth", zero_phase=False), np.random.default_rng(0))[2]
    assert causal["cutoff_3db_hz"] == 3000.0


def test_hiss_after_is_drawn_last_so_other_recipes_keep_their_draws():
    with_late = DegradeRanges(p_hiss_after=1.0)
    a = [sample_degrade_config(np.random.default_rng(s)) for s in range(20)]
    b = [sample_degrade_config(np.random.default_rng(s), with_late) for s in range(20)]
    assert all(x.hiss_after_db is None for x in a)
    assert all(-75.0 <= y.hiss_after_db <= -45.0 for y in b)
    assert [dict(x.to_dict(), hiss_after_db=None) for x in a] == [dict(y.to_dict(), hiss_after_db=None) for y in b]
