"""Does ``torch.compile`` speed up inference? Eager vs compiled, one tile batch, same run.

    python -m benchmarks.bench_compile            # writes the "compile" section of docs/benchmarks.md

The model is prepared exactly as ``restore()`` prepares it (BatchNorm folded,
channels-last on the CPU); both variants run the same 560x560 tile (a 512 core plus
the 24-pixel halo) and report the median of 5 timed calls after warm-up.
"""

import argparse
import statistics
import time

import torch

from napari_lowlight import load_model
from napari_lowlight.network import fold_batchnorm, image_context

from . import _report

TILE = 512 + 2 * 24


def _seconds(function, repeats=5, warmup=2):
    for _ in range(warmup):
        function()
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        timings.append(time.perf_counter() - began)
    return statistics.median(timings)


def measure(device="cpu"):
    """Seconds per tile: eager, and compiled (with its compile time); equal outputs?"""
    model = fold_batchnorm(load_model(device="cpu")).to(device)
    if device == "cpu":
        model = model.to(memory_format=torch.channels_last)
    low = torch.rand(1, 1, TILE, TILE, device=device).contiguous(memory_format=torch.channels_last)
    alpha = torch.ones(1, device=device)
    context = image_context(torch.rand(1, 4096)).to(device)
    results = {}
    with torch.inference_mode():
        eager = model(low, alpha, context)[0]
        results["eager_s"] = _seconds(lambda: model(low, alpha, context))
        compiled = torch.compile(model)
        began = time.perf_counter()
        out = compiled(low, alpha, context)[0]
        results["compile_s"] = time.perf_counter() - began
        results["compiled_s"] = _seconds(lambda: compiled(low, alpha, context))
        results["max_difference"] = float((out - eager).abs().max())
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    r = measure(args.device)
    mpix = TILE * TILE / 1e6
    lines = _report.section_header(
        "torch.compile", command=_report.command_line("benchmarks.bench_compile"),
        machine=_report.machine_description(), model_text=_report.describe_model(load_model(device="cpu")), quick=False,
    )
    rows = [
        ["eager (folded BN, channels-last), s per 560x560 tile", f"{r['eager_s']:.3f}", f"{mpix / r['eager_s']:.2f}"],
        ["torch.compile, s per tile", f"{r['compiled_s']:.3f}", f"{mpix / r['compiled_s']:.2f}"],
        ["torch.compile, first call (compilation), s", f"{r['compile_s']:.1f}", ""],
    ]
    lines += [_report.markdown_table(["variant", "seconds", "MPix/s"], rows), ""]
    lines += [f"Largest difference between compiled and eager outputs: {r['max_difference']:.2e}.", ""]
    body = "\n".join(lines)
    print(body)
    _report.write_section("compile", body)


if __name__ == "__main__":
    main()
