"""The thesis generator/discriminator: shapes, representations, presets, counting."""

from __future__ import annotations

import math
import time

import pytest
import torch

from reelrestore.models.spectral import ConvSTFT, istft, stft
from reelrestore.models.thesis import (
    ThesisConfig,
    ThesisDiscriminator,
    ThesisGenerator,
    count_layers,
    experiment,
    format_counts,
    tiny_config,
)

SPEC = (2, 2, 1025, 47)  # (B, 2, bins, frames) of two 0.5 s segments


def audio(batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(24000) / 48000
    tones = sum(torch.sin(2 * math.pi * 220 * k * t + k) / k for k in range(1, 12))
    return 0.3 * tones + 0.05 * torch.randn(batch, 24000, generator=g)  # (B, 24000)


@pytest.mark.parametrize("n", range(1, 12))
def test_every_experiment_maps_a_spectrum_to_the_same_shape(n):
    torch.manual_seed(0)
    cfg = tiny_config(n)
    g, d = ThesisGenerator(cfg), ThesisDiscriminator(cfg)
    x = stft(audio())
    out = g(x)
    assert out.shape == SPEC
    assert torch.isfinite(out).all()
    assert d(g.analyse(x)).shape == (2,)


def test_generator_accepts_other_frame_counts():
    g = ThesisGenerator(tiny_config()).eval()
    for frames in (1, 20, 94):
        x = torch.randn(1, 2, 1025, frames)
        assert g(x).shape == (1, 2, 1025, frames)


def test_generator_rejects_a_wrong_spectrum_with_expected_got():
    g = ThesisGenerator(tiny_config())
    with pytest.raises(ValueError, match=r"expected spectrum \(batch, 2, 1025, frames\), got \(1, 2, 513, 47\)"):
        g(torch.zeros(1, 2, 513, 47))
    with pytest.raises(ValueError, match="expected discriminator input"):
        ThesisDiscriminator(tiny_config())(torch.zeros(1, 2, 1025, 40))


def test_default_config_is_experiment_11_layernorm_leaky_03():
    cfg = ThesisConfig()
    assert cfg == experiment(11)
    assert (cfg.representation, cfg.norm, cfg.activation, cfg.leaky_slope, cfg.n_layers, cfg.width) == \
        ("complex_ri", "layer", "leaky_relu", 0.3, 5, 64)
    assert experiment(4).n_layers == 4 and experiment(1).representation == "log_stft"
    assert len({experiment(n) for n in range(1, 12)}) == 11  # every preset differs
    with pytest.raises(ValueError, match="expected an experiment number in 1..11, got 12"):
        experiment(12)
    with pytest.raises(ValueError, match="expected norm in"):
        ThesisConfig(norm="instance")


def test_config_dict_round_trip_and_preset_key():
    cfg = tiny_config(7, dropout=0.25)
    assert ThesisConfig.from_dict(cfg.to_dict()) == cfg
    assert ThesisConfig.from_dict({"experiment": 2, "width": 8}) == experiment(2, width=8)
    with pytest.raises(ValueError, match="unknown model config keys"):
        ThesisConfig.from_dict({"widht": 8})


def test_conv_stft_matches_torch_stft_and_istft():
    x = audio()
    conv = ConvSTFT(2048, 512)
    spec = stft(x)
    assert torch.allclose(conv(x), spec, atol=1e-3 * spec.abs().max())
    assert torch.allclose(conv.inverse(spec, 24000), istft(spec, 24000), atol=1e-5)
    assert torch.allclose(istft(spec, 24000), x, atol=1e-5)


@pytest.mark.parametrize("representation", ["complex_ri", "log_stft"])
def test_representation_inverts_exactly_with_input_phase(representation):
    g = ThesisGenerator(tiny_config(representation=representation))
    x = stft(audio())
    z = g.analyse(x)
    assert z.abs().max() <= 1.0 + 1e-6  # within Tanh's range
    assert torch.allclose(g.synthesise(z, x), x, atol=1e-4 * x.abs().max())


def test_log_mfcc_inverse_is_finite_for_any_network_output():
    g = ThesisGenerator(tiny_config(2, griffin_lim_iters=2))
    x = stft(audio())
    for y in (torch.ones(2, 1, 128, 47), -torch.ones(2, 1, 128, 47)):  # Tanh's extremes
        assert torch.isfinite(g.synthesise(y, x)).all()


def test_layernorm_generator_treats_batch_items_independently():
    """Exp 11 (LayerNorm): a frame's restoration does not depend on its batch neighbours,
    so batched real-time inference equals batch-1 inference."""
    torch.manual_seed(0)
    g = ThesisGenerator(tiny_config()).eval()
    x = stft(audio())
    other = x.clone()
    other[1] = stft(audio(1, seed=5))[0]
    with torch.no_grad():
        out = g(x)[0]
        tol = 1e-5 * out.abs().max()  # batch size changes the conv kernels' summation order
        assert torch.allclose(g(other)[0], out, rtol=0, atol=tol)
        assert torch.allclose(g(x[:1])[0], out, rtol=0, atol=tol)


def expected_generator_layers(cfg: ThesisConfig, bins: int, frames: int) -> list[tuple[int, int]]:
    """(params, MACs) per counted layer, from the formulas: conv C_in*C_out*k*k (+C_out bias
    without norm) params and params*F_out*T_out MACs; a transposed conv's MACs use its
    input size; GroupNorm/BatchNorm own 2*C params."""
    k2, bias = cfg.kernel_size**2, cfg.norm == "none"
    chans = [cfg.repr_channels] + [cfg.width * 2**i for i in range(cfg.n_layers)]
    sizes = [bins]
    for _ in range(cfg.n_layers):
        sizes.append(math.ceil(sizes[-1] / cfg.stride[0]))
    rows = []
    for i in range(cfg.n_layers):  # encoder
        w = chans[i] * chans[i + 1] * k2
        rows.append((w + bias * chans[i + 1], w * sizes[i + 1] * frames))
        if cfg.norm != "none":
            rows.append((2 * chans[i + 1], 0))
    for i in reversed(range(cfg.n_layers)):  # generator
        w = chans[i + 1] * chans[i] * k2
        last = i == 0
        rows.append((w + (bias or last) * chans[i], w * sizes[i + 1] * frames))
        if cfg.norm != "none" and not last:
            rows.append((2 * chans[i], 0))
    return rows


@pytest.mark.parametrize("cfg", [tiny_config(), tiny_config(4), tiny_config(5), experiment(11)],
                         ids=["tiny-exp11", "tiny-exp4", "tiny-exp5-no-norm", "full-exp11"])
def test_layer_counts_match_the_analytic_formula(cfg):
    g = ThesisGenerator(cfg)
    rows = count_layers(g, (1, 2, 1025, 47))
    assert [(r.params, r.macs) for r in rows] == expected_generator_layers(cfg, 1025, 47)
    assert sum(r.params for r in rows) == sum(p.numel() for p in g.parameters())
    assert "total" in format_counts(rows)


def test_full_width_experiment_11_costs_about_72_g_macs_per_frame():
    rows = count_layers(ThesisGenerator(experiment(11)), (1, 2, 1025, 47))
    params, macs = sum(r.params for r in rows), sum(r.macs for r in rows)
    assert params == 34_828_290
    assert 70e9 < macs < 78e9, f"{macs / 1e9:.1f} G MACs"  # 75.7 G: the quoted ~72 G order
    d_rows = count_layers(ThesisDiscriminator(experiment(11)), (1, 2, 1025, 47))
    assert d_rows[-1].kind == "Linear" and d_rows[-1].params == 1024 * 33 * 2 + 1


@pytest.mark.slow
def test_full_width_experiment_11_forward_backward_on_cpu():
    """~11 s and ~1 GB on 2 CPU cores (batch 1)."""
    torch.manual_seed(0)
    cfg = experiment(11)
    g, d = ThesisGenerator(cfg), ThesisDiscriminator(cfg)
    x = stft(audio(1))
    start = time.perf_counter()
    z = g.analyse(x)
    y = g.net(z)  # (1, 2, 1025, 47)
    loss = 100 * (y - z).pow(2).mean() + torch.nn.functional.softplus(-d(y)).mean()
    loss.backward()
    elapsed = time.perf_counter() - start
    assert g.synthesise(y, x).shape == (1, 2, 1025, 47)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())
    assert elapsed < 120, f"forward+backward took {elapsed:.1f} s"
