"""``restore-eval``: how close is a restored file to its reference?

    restore-eval --reference target.wav --restored restored.wav --damaged damaged.wav \\
        --cutoff 2000 --json scores.json --figure spec.png
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import click
from reelrestore.engine.safety import AtomicPath, check_outputs, guarded, write_text
from reelrestore.engine.units import parse_hz

# numpy, soundfile and the metrics are imported where used: --help stays instant.
if TYPE_CHECKING:
    import numpy as np

ROWS = (("mse", "MSE"), ("rmse", "RMSE"), ("snr_db", "SNR (dB)"), ("lsd", "LSD whole"),
        ("lsd_above", "LSD above cutoff"), ("lsd_below", "LSD below cutoff"), ("stoi", "STOI"))


def load(path: Path, role: str) -> tuple[np.ndarray, int]:
    """``[channels, n]`` float64 and the rate, or a one-line error."""
    import numpy as np
    import soundfile as sf

    if not path.is_file():
        raise click.ClickException(f"expected the {role} file {path}, found none")
    try:
        x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except RuntimeError as err:  # soundfile.LibsndfileError
        raise click.ClickException(f"expected a readable {role} audio file, got {path}: {err}") from None
    if x.shape[0] == 0:
        raise click.ClickException(f"expected audio samples in the {role} file {path}, got none")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise click.ClickException(f"{path}: sample {int(np.argmax(bad))} of the {role} is NaN or infinite")
    return x.T, sr


def score(ref: np.ndarray, est: np.ndarray, sr: int, cutoff: float | None) -> dict[str, float | None]:
    """Metrics per channel ``[channels, n]``, averaged over channels."""
    import numpy as np

    from .metrics import all_metrics

    per = [all_metrics(r, e, sr, cutoff) for r, e in zip(ref, est)]
    return {k: (None if per[0][k] is None else float(np.mean([p[k] for p in per]))) for k in per[0]}


def spectrogram_figure(path: Path, panels: list[tuple[str, np.ndarray]], sr: int, cutoff: float | None) -> None:
    """Side-by-side log-power spectrograms (shared colour scale), cutoff dashed; Agg only."""
    import numpy as np
    from matplotlib.figure import Figure

    from .metrics import stft_power

    fig = Figure(figsize=(4.2 * len(panels), 4.0), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    specs = [10 * np.log10(np.maximum(stft_power(x.mean(axis=0)), 1e-10)) for _, x in panels]
    top = max(float(s.max()) for s in specs)
    for ax, (title, x), spec in zip(axes, panels, specs):
        extent = (0.0, x.shape[-1] / sr, 0.0, sr / 2000)
        im = ax.imshow(spec, origin="lower", aspect="auto", extent=extent, vmin=top - 100, vmax=top, cmap="magma")
        if cutoff is not None:
            ax.axhline(cutoff / 1000, color="cyan", ls="--", lw=0.8)
        ax.set(title=title, xlabel="time (s)")
    axes[0].set_ylabel("frequency (kHz)")
    fig.colorbar(im, ax=list(axes), label="power (dB)")
    with AtomicPath(path) as temp:
        fig.savefig(temp, dpi=110)


def _hz(value: str | None) -> float | None:
    try:
        return None if value is None else parse_hz(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def table(scores: dict[str, dict[str, float | None]], cutoff: float | None) -> None:
    roles = list(scores)
    click.echo(f"{'metric':<18}" + "".join(f"{r:>12}" for r in roles))
    for key, label in ROWS:
        name = label.replace("cutoff", f"{cutoff:g} Hz") if cutoff is not None else label
        click.echo(f"{name:<18}" + "".join(f"{fmt(scores[r][key]):>12}" for r in roles))
    if cutoff is None:
        click.echo("(LSD above/below need --cutoff)")


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if math.isfinite(v) else str(v)


EPILOG = """\b
Examples:
  restore-eval --reference target.wav --restored restored.wav
  restore-eval --reference target.wav --restored restored.wav --damaged damaged.wav \\
      --cutoff 2000 --json scores.json --figure spec.png

LSD above/below need --cutoff. The reference should be clean + hiss (restore-degrade
--target): restoration keeps hiss, so the plain clean file would count hiss as error.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelrestore", prog_name="restore-eval", message="%(prog)s %(version)s")
@guarded("restore-eval")
@click.option("--reference", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Clean reference.")
@click.option("--restored", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Restored file.")
@click.option("--damaged", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Damaged input, scored too as the baseline.")
@click.option("--cutoff", callback=lambda ctx, param, value: _hz(value), default=None,
              help="Cutoff of the damage (2000, 2k, 2kHz): enables LSD above/below.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the scores here.")
@click.option("--figure", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write reference | damaged | restored spectrograms (PNG, PDF, SVG).")
@click.option("-y", "--overwrite", "overwrite", flag_value=True, default=None,
              help="Replace output files that exist (without -y or -n an existing output is refused).")
@click.option("-n", "--no-overwrite", "overwrite", flag_value=False, help="Never replace an existing output.")
@click.option("-q", "--quiet", is_flag=True, help="No table on the console (use with --json).")
@click.option("-v", "--verbose", is_flag=True, help="Also print the scores of every channel.")
def main(reference: Path, restored: Path, damaged: Path | None, cutoff: float | None,
         json_path: Path | None, figure: Path | None, overwrite: bool | None, quiet: bool, verbose: bool) -> None:
    """Score RESTORED (and DAMAGED) against REFERENCE: MSE, RMSE, SNR, LSD, STOI."""
    check_outputs([reference, restored, damaged], [("--json", json_path), ("--figure", figure)], overwrite)
    files = {"reference": reference, "restored": restored} | ({"damaged": damaged} if damaged else {})
    audio = {role: load(path, role) for role, path in files.items()}
    sr = audio["reference"][1]
    for role, (x, rate) in audio.items():
        if rate != sr:
            raise click.ClickException(f"expected {role} at the reference rate {sr} Hz, got {rate} Hz "
                                       f"(resample it first)")
        if x.shape[0] != audio["reference"][0].shape[0]:
            raise click.ClickException(f"expected {role} with {audio['reference'][0].shape[0]} channel(s) like "
                                       f"the reference, got {x.shape[0]}")
    if cutoff is not None and cutoff >= sr / 2:
        raise click.ClickException(f"expected --cutoff below Nyquist ({sr / 2:g} Hz), got {cutoff:g}")
    lengths = {role: x.shape[-1] for role, (x, _) in audio.items()}
    n = min(lengths.values())
    mismatch = None
    if len(set(lengths.values())) > 1:
        mismatch = lengths
        click.echo("note: lengths differ (" + ", ".join(f"{r} {m}" for r, m in lengths.items())
                   + f" samples); comparing the first {n} samples", err=True)
    ref = audio["reference"][0][:, :n]
    scores = {role: score(ref, audio[role][0][:, :n], sr, cutoff) for role in audio if role != "reference"}

    if not quiet:
        table(scores, cutoff)
    if verbose:
        for c in range(ref.shape[0]):
            click.echo(f"channel {c + 1}:")
            table({role: score(ref[c : c + 1], audio[role][0][c : c + 1, :n], sr, cutoff) for role in scores}, cutoff)

    if json_path is not None:
        clean = lambda v: v if v is None or math.isfinite(v) else str(v)
        report = {"files": {r: str(p) for r, p in files.items()}, "sample_rate": sr, "cutoff_hz": cutoff,
                  "compared_samples": n, "length_mismatch": mismatch,
                  "metrics": {r: {k: clean(v) for k, v in s.items()} for r, s in scores.items()}}
        write_text(json_path, json.dumps(report, indent=2) + "\n")
    if figure is not None:
        panels = [(r, audio[r][0][:, :n]) for r in ("reference", "damaged", "restored") if r in audio]
        try:
            spectrogram_figure(figure, panels, sr, cutoff)
        except ValueError as err:  # e.g. unknown image format
            raise click.ClickException(f"could not write the figure {figure}: {err}") from None
        except OSError as err:
            raise click.ClickException(f"could not write the figure {figure}: {err.strerror or err}; "
                                       "is the disk full?") from None


if __name__ == "__main__":
    main()
