"""Speed benchmark (BENCHMARK.md, "Speed"): throughput, fraction of peak, latency, memory.

Run from the repository root, on an otherwise idle machine::

    python -m benchmarks.bench_speed            # full run, writes docs/benchmarks.md
    python -m benchmarks.bench_speed --quick    # smoke run on small images, prints only

Everything is measured on the CPU in float32 and, when CUDA is available, again on the
GPU (where ``restore`` runs in bfloat16 autocast). Times are whole public-API calls
(normalisation, tiling and copies included), median of 3 after one warm-up call.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
from skimage.transform import resize
from torch.utils.flop_counter import FlopCounterMode

import napari_lowlight
from napari_lowlight.weights import shipped_weights_path

from . import _report
from .baselines import clahe, lime
from .test_images import load_test_set

__all__ = [
    "matmul_peak_gflops",
    "flops_per_pixel",
    "median_seconds",
    "training_images_per_second",
    "peak_memory",
    "speed_images",
    "measure_device",
    "measure_baselines",
    "run",
    "main",
]

#: Image sides of a full run and of a --quick smoke run.
FULL = dict(grey=2048, rgb=1024, latency=1024, memory=4096, flops=256, train_steps=8)
QUICK = dict(grey=256, rgb=128, latency=256, memory=512, flops=64, train_steps=3)
#: The shipped recipe's further alpha-estimator contexts per step (they cost CPU time per step).
RECIPE_ALPHA_BATCH = _report.recipe_options()["alpha_batch_size"]


def _synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_peak_gflops(device="cpu", dtype=torch.float32, size=2048, repeats=5):
    """The machine's dense matmul rate: best of `repeats` products of two size x size matrices.

    Parameters
    ----------
    device : str
    dtype : torch.dtype
        float32 on the CPU; bfloat16 on CUDA (the dtype ``restore`` computes in there).
    size : int
    repeats : int

    Returns
    -------
    float
        GFLOP/s, counting ``2 * size**3`` operations per product.
    """
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.matmul(a, b)  # warm-up: thread pool, cuBLAS handles
    best = float("inf")
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def flops_per_pixel(model, *, size=256, device="cpu"):
    """Network FLOPs per pixel, counted by torch over single-tile calls.

    The image is smaller than a tile, so this is the network's own cost with no
    overlap between tiles (tiling adds the halo's share on large images).

    Parameters
    ----------
    model : torch.nn.Module
    size : int
        Side of the grey test image.
    device : str

    Returns
    -------
    dict
        ``restore`` (Estimate-Net + Enhance-Net) and ``enhance`` (Enhance-Net only, the
        cost of a new alpha), in FLOPs per pixel.
    """
    image = np.random.default_rng(0).random((size, size), dtype=np.float32) * 0.3
    counts = {}
    with FlopCounterMode(display=False) as counter:
        difference = napari_lowlight.estimate_difference(image, model=model, device=device)
    estimate = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        napari_lowlight.enhance(image, difference, 1.0, model=model, device=device)
    counts["enhance"] = counter.get_total_flops() / size**2
    with FlopCounterMode(display=False) as counter:
        napari_lowlight.restore(image, 1.0, model=model, device=device)
    counts["restore"] = counter.get_total_flops() / size**2
    counts["estimate"] = estimate / size**2
    return counts


def median_seconds(function, *, repeats=3, warmup=1):
    """Median wall time of `function()` over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_images_per_second(images, *, model_path=None, steps=8, device="cpu", alpha_batch_size=0):
    """Training throughput of :func:`napari_lowlight.train` (batch 32 of 48 x 48 patches).

    Parameters
    ----------
    images : list of ndarray
        Clean grey training images.
    model_path : path, optional
        Weights to start from (their architecture sets the cost); default model when None.
    steps : int
        Steps run; the first is a warm-up and not counted.
    device : str
    alpha_batch_size : int
        Further contexts per step for the alpha estimator (the recipe's: ``RECIPE_ALPHA_BATCH``).

    Returns
    -------
    float
        Median images (patches) per second over the counted steps.
    """
    model = napari_lowlight.load_model(model_path, device=device)
    events = napari_lowlight.train(
        images,
        model=model,
        steps=steps,
        batch_size=32,
        patch_size=48,
        seed=0,
        device=device,
        validate_every=0,
        alpha_batch_size=alpha_batch_size,
    )
    rates = [event.images_per_second for event in events]
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


# Run in a fresh interpreter: VmHWM is the process's lifetime peak, so it must not
# include the memory of the other measurements.
_MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    import napari_lowlight

    def vm_hwm_mib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024

    size, device, model_path = int(sys.argv[1]), sys.argv[2], sys.argv[3] or None
    model = napari_lowlight.load_model(model_path, device=device)
    image = np.random.default_rng(0).random((size, size), dtype=np.float32) * 0.3
    before = vm_hwm_mib()
    napari_lowlight.restore(image, 1.0, model=model, device=device)
    result = {"before_mib": before, "peak_mib": vm_hwm_mib()}
    if torch.device(device).type == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result))
    """
)


def peak_memory(size, *, model_path=None, device="cpu"):
    """Peak memory of restoring a size x size grey float32 image, in a fresh process.

    Returns
    -------
    dict
        ``peak_mib``: the process's VmHWM after the call; ``before_mib``: its VmHWM
        just before (interpreter, torch, model and the input image); ``cuda_peak_mib``
        on CUDA: torch's peak allocated device memory.
    """
    completed = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(size), device, "" if model_path is None else str(model_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def speed_images(size):
    """The inputs of the speed runs, made from the test set's photographs.

    Returns
    -------
    dict
        ``grey``: low-light (size["grey"])² float32; ``rgb``: low-light (size["rgb"])² x 3
        float32; ``latency``: grey (size["latency"])² float32; ``train``: clean grey images.
    """
    photos = {image.name: image.clean for image in load_test_set(max_side=512)}

    def low(clean, side, channel_axis):
        shape = (side, side) + clean.shape[2:]
        darkened = napari_lowlight.synthesize_low_light(
            resize(clean, shape, order=1), 1.0, 0.5, noise_sigma=0.02, seed=0, channel_axis=channel_axis
        )
        return darkened.astype(np.float32)

    return {
        "grey": low(photos["camera"], size["grey"], None),
        "rgb": low(photos["astronaut"], size["rgb"], -1),
        "latency": low(photos["camera"], size["latency"], None),
        "train": [image for image in photos.values() if image.ndim == 2],
    }


def measure_device(device, images, size, *, model_path=None, log=sys.stderr):
    """Every speed number of one device, on the inputs of :func:`speed_images`.

    Returns
    -------
    dict
    """
    cuda = torch.device(device).type == "cuda"
    model = napari_lowlight.load_model(model_path, device=device)
    grey, rgb, square = images["grey"], images["rgb"], images["latency"]
    out = {"device": device}

    def say(key):
        print(f"{device}: {key} = {out[key]}", file=log, flush=True)

    def grey_mpix_s(network, alpha, **settings):
        seconds = median_seconds(lambda: napari_lowlight.restore(grey, alpha, model=network, device=device, **settings))
        return grey.size / seconds / 1e6

    def alpha_change_s(network, alpha):
        # A new alpha on a cached difference map: what the viewer's slider costs.
        difference = napari_lowlight.estimate_difference(square, model=network, device=device)
        return median_seconds(lambda: napari_lowlight.enhance(square, difference, alpha, model=network, device=device))

    peak_dtype = torch.bfloat16 if cuda else torch.float32
    out["peak_gflops"] = matmul_peak_gflops(device, peak_dtype)
    say("peak_gflops")
    out["flops_per_pixel"] = flops_per_pixel(model, size=size["flops"], device=device)
    say("flops_per_pixel")
    out["grey_mpix_s"] = grey_mpix_s(model, 1.0)
    say("grey_mpix_s")
    eager = napari_lowlight.restore(grey, 1.0, model=model, device=device)
    began = time.perf_counter()
    compiled = napari_lowlight.restore(grey, 1.0, model=model, device=device, compile=True)
    out["compile_first_call_s"] = time.perf_counter() - began
    out["compiled_max_difference"] = float(np.abs(compiled - eager).max())
    out["grey_compiled_mpix_s"] = grey_mpix_s(model, 1.0, compile=True)
    say("grey_compiled_mpix_s")
    seconds = median_seconds(lambda: napari_lowlight.restore(rgb, 1.0, model=model, channel_axis=-1, device=device))
    # Pixels, not samples: an RGB pixel costs three planes.
    out["rgb_mpix_s"] = rgb.shape[0] * rgb.shape[1] / seconds / 1e6
    say("rgb_mpix_s")
    # The machine's speed drifts (shared hosts, clocks): take the peak before and after the
    # timings it is compared with, and keep the higher one, the stricter reference.
    out["peak_gflops"] = max(out["peak_gflops"], matmul_peak_gflops(device, peak_dtype))
    say("peak_gflops")
    for variant in ("", "_compiled"):
        gflops = out[f"grey{variant}_mpix_s"] * 1e6 * out["flops_per_pixel"]["restore"] / 1e9
        out[f"achieved{variant}_gflops"] = gflops
        out[f"fraction{variant}_of_peak"] = gflops / out["peak_gflops"]

    out["enhance_s"] = alpha_change_s(model, 1.5)
    say("enhance_s")
    out["restore_latency_s"] = median_seconds(lambda: napari_lowlight.restore(square, 1.5, model=model, device=device))
    say("restore_latency_s")
    if model_path is None:
        # The fluorescence weights' dilated Enhance-Net blocks cost more per pixel, and the
        # slider's latency target holds for them too.
        fluorescence = napari_lowlight.load_model(shipped_weights_path("fluorescence"), device=device)
        out["fluorescence_grey_mpix_s"] = grey_mpix_s(fluorescence, 0.0)
        say("fluorescence_grey_mpix_s")
        # At alpha 0 restore refines by default (a Wiener filter under the image's noise).
        out["fluorescence_unrefined_grey_mpix_s"] = grey_mpix_s(fluorescence, 0.0, refine=False)
        say("fluorescence_unrefined_grey_mpix_s")
        out["fluorescence_enhance_s"] = alpha_change_s(fluorescence, 0.5)
        say("fluorescence_enhance_s")
        out["fluorescence_enhance_refined_s"] = alpha_change_s(fluorescence, 0.0)
        say("fluorescence_enhance_refined_s")

    out["train_images_s"] = training_images_per_second(
        images["train"], model_path=model_path, steps=size["train_steps"], device=device
    )
    say("train_images_s")
    out["train_recipe_images_s"] = training_images_per_second(
        images["train"],
        model_path=model_path,
        steps=size["train_steps"],
        device=device,
        alpha_batch_size=RECIPE_ALPHA_BATCH,
    )
    say("train_recipe_images_s")
    out["memory"] = peak_memory(size["memory"], model_path=model_path, device=device)
    say("memory")
    return out


def measure_baselines(grey, *, log=sys.stderr):
    """LIME and CLAHE throughput (MPix/s) on the same grey image as ``restore``.

    LIME is timed once (its sparse solve takes minutes at 2048 x 2048); CLAHE is the
    median of 3 after a warm-up.
    """
    grey = grey.astype(np.float64)
    out = {"clahe_mpix_s": grey.size / median_seconds(lambda: clahe(grey)) / 1e6}
    print(f"cpu: clahe_mpix_s = {out['clahe_mpix_s']}", file=log, flush=True)
    out["lime_mpix_s"] = grey.size / median_seconds(lambda: lime(grey), repeats=1, warmup=0) / 1e6
    print(f"cpu: lime_mpix_s = {out['lime_mpix_s']}", file=log, flush=True)
    return out


def format_report(results, baselines, size, *, machine, command, model_text, quick):
    """The markdown of the speed section."""
    headings = ["CPU, float32" if r["device"] == "cpu" else "CUDA, bfloat16 autocast" for r in results]
    grey, rgb, latency, memory = size["grey"], size["rgb"], size["latency"], size["memory"]

    def gib(mib):
        return "—" if mib is None else f"{mib / 1024:.2f} GiB"

    def flops(r):
        counts = r["flops_per_pixel"]
        return f"{counts['restore'] / 1e3:.0f} k / {counts['enhance'] / 1e3:.0f} k"

    # (label, cell of one device's results)
    per_device = [
        (
            "matmul peak (best of 5 2048² products before and 5 after the restore timings), GFLOP/s",
            lambda r: f"{r['peak_gflops']:.0f}",
        ),
        ("network FLOPs per pixel: restore / enhance only", flops),
        (f"`restore` {grey}×{grey} grey float32, MPix/s", lambda r: f"{r['grey_mpix_s']:.3f}"),
        (f"`restore` {rgb}×{rgb} RGB float32, MPix/s (pixels of 3 planes)", lambda r: f"{r['rgb_mpix_s']:.3f}"),
        (
            "achieved GFLOP/s (grey), fraction of matmul peak",
            lambda r: f"{r['achieved_gflops']:.1f} ({100 * r['fraction_of_peak']:.1f} %)",
        ),
        (
            "`restore(..., compile=True)`, same grey image, MPix/s",
            lambda r: f"{r['grey_compiled_mpix_s']:.3f}",
        ),
        (
            "… achieved GFLOP/s, fraction of matmul peak",
            lambda r: f"{r['achieved_compiled_gflops']:.1f} ({100 * r['fraction_compiled_of_peak']:.1f} %)",
        ),
        ("… its first call (compilation included), s", lambda r: f"{r['compile_first_call_s']:.1f}"),
        ("… largest difference from the eager result", lambda r: f"{r['compiled_max_difference']:.1e}"),
        (f"alpha change: `enhance` on {latency}×{latency} (cached difference), s", lambda r: f"{r['enhance_s']:.3f}"),
        (f"full `restore` on {latency}×{latency}, s", lambda r: f"{r['restore_latency_s']:.3f}"),
    ]
    if all("fluorescence_grey_mpix_s" in r for r in results):
        per_device += [
            (
                f"shipped fluorescence weights: `restore` {grey}×{grey} grey at alpha 0 (refined), MPix/s",
                lambda r: f"{r['fluorescence_grey_mpix_s']:.3f}",
            ),
            ("… unrefined (`refine=False`), MPix/s", lambda r: f"{r['fluorescence_unrefined_grey_mpix_s']:.3f}"),
            (
                f"… alpha change: `enhance` on {latency}×{latency} (cached difference), s",
                lambda r: f"{r['fluorescence_enhance_s']:.3f}",
            ),
            (
                "… alpha change to 0 (refined), s",
                lambda r: f"{r['fluorescence_enhance_refined_s']:.3f}",
            ),
        ]
    per_device += [
        ("training, images/s (batch 32 of 48×48 patches)", lambda r: f"{r['train_images_s']:.0f}"),
        (
            f"… with the recipe's {RECIPE_ALPHA_BATCH} further alpha-estimator contexts per step, images/s",
            lambda r: f"{r['train_recipe_images_s']:.0f}",
        ),
        (f"peak memory restoring {memory}×{memory} grey float32 (VmHWM)", lambda r: gib(r["memory"]["peak_mib"])),
        ("… of which before the call (interpreter, torch, model, input)", lambda r: gib(r["memory"]["before_mib"])),
    ]
    if any("cuda_peak_mib" in r["memory"] for r in results):
        per_device.append(("peak CUDA memory allocated", lambda r: gib(r["memory"].get("cuda_peak_mib"))))
    rows = [[label] + [cell(r) for r in results] for label, cell in per_device]
    # The baselines run on the CPU only.
    blank = ["—"] * (len(results) - 1)
    rows += [
        ["CLAHE (scikit-image), same grey image, MPix/s", f"{baselines['clahe_mpix_s']:.3f}"] + blank,
        ["LIME (NumPy/SciPy sped-up solver), same grey image, MPix/s, 1 call", f"{baselines['lime_mpix_s']:.4f}"]
        + blank,
    ]
    lines = _report.section_header(
        "Speed", command=command, machine=machine, model_text=model_text, quick=quick, images_word="small images"
    )
    lines += [
        _report.markdown_table(["quantity"] + headings, rows),
        "",
        "Times are whole public-API calls (normalisation, tiling, copies), median of 3 after a warm-up."
        " FLOPs are counted by `torch.utils.flop_counter` over single-tile calls; the fraction of peak"
        " compares the grey throughput times FLOPs per pixel with the matmul rate measured in the same run."
        " `compile=True` runs both nets through `torch.compile` (inductor); it is timed after its first call."
        " Training images/s is the median over the steps after the first.",
    ]
    return "\n".join(lines)


def run(*, model_path=None, quick=False, device=None, log=sys.stderr):
    """Measure everything; returns ``(per-device results, baseline results, sizes)``."""
    size = QUICK if quick else FULL
    devices = [device] if device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    images = speed_images(size)
    results = [measure_device(d, images, size, model_path=model_path, log=log) for d in devices]
    return results, measure_baselines(images["grey"], log=log), size


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="a .safetensors file (default: the shipped model)")
    parser.add_argument("--quick", action="store_true", help="small images: a smoke run")
    parser.add_argument("--device", default=None, help="only this device (default: cpu, and cuda when available)")
    _report.add_output_options(parser)
    args = parser.parse_args(argv)
    # An empty compiler cache: the first compiled call then costs what it costs on a fresh machine.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="napari-lowlight-bench-inductor-")
    machine = _report.machine_description()
    results, baselines, size = run(model_path=args.model, quick=args.quick, device=args.device)
    model = napari_lowlight.load_model(args.model, device="cpu")
    report = format_report(
        results,
        baselines,
        size,
        machine=machine,
        command=_report.command_line("benchmarks.bench_speed"),
        model_text=_report.describe_model(model, args.model),
        quick=args.quick,
    )
    _report.publish(args, "speed", report, {"devices": results, "baselines": baselines, "size": size})


if __name__ == "__main__":
    main()
