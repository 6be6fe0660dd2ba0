"""The bench's results as a terminal table and a figure (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value == 0.0:
            return "0"
        if abs(value) < 1e-3:
            return f"{value:.1e}"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return "-" if value is None else str(value)


def _table(header: list[str], rows: list[list[object]], indent: str = "  ") -> list[str]:
    cells = [header] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [indent + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in cells]


def format_report(r: dict) -> str:
    m, lines = r["machine"], []
    v = m["versions"]
    lines += [
        f"restore-bench {r['bench']['date']}  model {r['model']['architecture']} {r['model']['version']} "
        f"({r['model']['path_name']}) on {r['model']['provider']}",
        f"machine: {m['cpu_model']}, {m['usable_cores']} usable cores, load {m['load_average_1_5_15']} -> "
        f"{r['bench']['load_average_after']}; numpy {v['numpy']}, numba {v['numba']}, onnxruntime "
        f"{v['onnxruntime']}, torch {v['torch']}",
    ]
    if "per_hop" in r:
        h = r["per_hop"]
        lines += ["", f"per-hop compute, {h['channels']} ch, hop {h['hop_samples']} samples = {h['budget_ms']:.1f} ms "
                  f"budget ({h['hops_per_run']} hops x {h['repeats']} runs, {h['warmup_hops']} warm-up hops dropped; "
                  "median of the runs' percentiles)"]
        keys = ["p50", "p95", "p99", "max"]
        lines += _table(["", *keys], [["ms", *(h["ms"][k] for k in keys)],
                                      ["% of budget", *(100 * h["fraction_of_budget"][k] for k in keys)],
                                      ["process CPU ms", *(h["process_cpu_ms"][k] for k in keys)]])
        if "stages_ms" in h:
            stages = "  ".join(f"{k} {_fmt(x)}" for k, x in h["stages_ms"].items())
            lines.append(f"  stages, median ms per hop: {stages}")
    if "throughput" in r:
        t = r["throughput"]
        sweeps = {"channels (restore_file)": t["channels"], "streams round robin": t["streams_round_robin"],
                  "streams threads": t["streams_threads"]}
        counts = sorted({p["count"] for s in sweeps.values() for p in s["points"]})
        table = {name: {p["count"]: p["real_time_factor"] for p in s["points"]} for name, s in sweeps.items()}
        lines += ["", f"real-time factor = wall / audio (< 1 is real time); channels batched in one restorer, "
                  f"{t['channels']['audio_seconds']:g} s file; mono streams in "
                  f"{t['streams_round_robin']['block_samples']}-sample blocks"]
        lines += _table(["count", *sweeps], [[c, *(table[n].get(c) for n in sweeps)] for c in counts])
        lines.append("  largest real-time count: " + ", ".join(
            f"{name} {s['max_realtime']}{'' if s['bounded'] else '+ (sweep limit)'}" for name, s in sweeps.items()))
    if "latency" in r:
        a = r["latency"]
        lines += ["", f"latency, simulated sound card, {a['block_samples']}-sample blocks ({a['block_ms']:.1f} ms), "
                  f"{a['audio_seconds_per_run']:g} s x {a['repeats']} runs",
                  f"  derived from the configuration (latency_samples {a['latency_samples']}): "
                  f"{a['derived_ms']:.1f} ms; "
                  f"with the block: up to {a['derived_worst_with_block_ms']:.1f} ms"]
        lines += _table(["ms", "p50", "p99", "max"], [[k, *(a[f"{k}_ms"][q] for q in ("p50", "p99", "max"))]
                                                      for k in ("measured", "algorithmic", "added", "compute")])
        lines.append(f"  feeds that ended after the next block was due: {a['late_blocks']}")
    if "stft" in r:
        s = r["stft"]
        lines += ["", f"STFT / iSTFT, n_fft {s['n_fft']}, hop {s['hop']}: median ms per call; x = time / engine's; "
                  "errors against the engine"]
        rows = []
        for label, size in s["sizes"].items():
            for impl in size["implementations"].values():
                rows.append([f"{label} {tuple(size['spectrum_shape'])}", impl["name"], impl["forward_ms"],
                             impl["forward_vs_engine"], impl["inverse_ms"], impl["inverse_vs_engine"],
                             impl["forward_max_rel_error"], impl["inverse_max_abs_error"],
                             impl["round_trip_max_abs_error"]])
        lines += _table(["size", "implementation", "fwd ms", "x", "inv ms", "x", "fwd rel err", "inv err",
                         "round trip"], rows)
        lines += [f"  skipped {k}: {why}" for k, why in s["skipped"].items()]
    if "inference" in r:
        i = r["inference"]
        lines += ["", f"inference, {i['frames_per_call']} STFT frames per 0.5 s frame: median ms"]
        lines += _table(["runtime", "provider", "precision", "threads", "batch", "ms/call", "ms/frame", "rel err"],
                        [[x["runtime"], x["provider"], x["precision"], x["threads"], x["batch"], x["ms_per_call"],
                          x["ms_per_frame"], x.get("max_rel_error_vs_fp32")] for x in i["rows"]])
        lines += [f"  skipped {k}: {why}" for k, why in i["skipped"].items()]
    if "memory" in r:
        mem = r["memory"]
        lines += ["", f"memory: peak RSS of restore_file in a fresh process ({mem['repeats']} runs each)"]
        lines += _table(["minutes", "peak RSS MB", "wall s", "RTF"],
                        [[x["minutes"], x["peak_rss_mb"], x["wall_seconds"], x["real_time_factor"]]
                         for x in mem["runs"]])
        lines.append(f"  growth from the shortest to the longest file: {mem['growth_mb']:.1f} MB; baseline (imports, "
                     f"model, kernels, no audio): {mem['baseline_rss_mb']:.1f} MB")
    for section, why in r.get("skipped", {}).items():
        lines.append(f"skipped {section}: {why}")
    lines.append(f"\nbench wall time {r['bench']['wall_seconds']:.1f} s")
    return "\n".join(lines)


def save_plot(r: dict, path: Path) -> str | None:
    """Per-hop time distribution against the hop budget, and RTF against streams/channels.
    Returns why nothing was drawn, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed"
    if "per_hop" not in r and "throughput" not in r:
        return "neither the per-hop nor the throughput benchmark ran"
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    if "per_hop" in r:
        h = r["per_hop"]
        lo, hi = min(h["samples_ms"]), max(h["samples_ms"])
        left.hist(h["samples_ms"], bins=np.geomspace(lo, max(hi, lo * 1.01), 60), color="tab:blue", alpha=0.8)
        for key, style in (("p50", "-"), ("p99", "--")):
            left.axvline(h["ms"][key], color="black", linestyle=style, label=f"{key} {h['ms'][key]:.2f} ms")
        left.axvline(h["budget_ms"], color="tab:red", label=f"hop budget {h['budget_ms']:.0f} ms")
        left.set_xscale("log")
        left.set(xlabel="compute per hop (ms, log)", ylabel="hops",
                 title=f"per-hop compute, {h['channels']} ch ({h['hops_per_run']} hops x {h['repeats']} runs)")
        left.legend()
    if "throughput" in r:
        t = r["throughput"]
        for name, key in (("channels, one restorer (file)", "channels"),
                          ("streams, round robin", "streams_round_robin"), ("streams, threads", "streams_threads")):
            points = t[key]["points"]
            right.plot([p["count"] for p in points], [p["real_time_factor"] for p in points], "o-", label=name)
        right.axhline(1.0, color="tab:red", label="real time")
        right.set_xscale("log", base=2)
        right.set_yscale("log")
        right.set(xlabel="channels or mono streams", ylabel="real-time factor (wall / audio)",
                  title="throughput: real time is lost above the red line")
        right.legend()
    fig.suptitle(f"restore-bench {r['bench']['date']}, {r['machine']['cpu_model']}, {r['model']['architecture']} model")
    fig.tight_layout()
    from reelrestore.engine.safety import AtomicPath

    with AtomicPath(path) as temp:
        fig.savefig(temp, dpi=110, format="png")
    plt.close(fig)
    return None
