"""Shot-noise removal on simulated fluorescence and sky frames (BENCHMARK.md's microscopy metric).

BENCHMARK.md scores real fluorescence frames against the average of hundreds of frames,
by PSNR after the least-squares affine fit ``a * out + b`` to that reference. No such
data is on this machine; this script applies the same metric to frames whose reference
is known exactly: generated cells and star fields (``benchmarks/test_images.py``, other
seeds than the quality benchmark's), recorded with Poisson shot noise at a given photon
count at full intensity plus Gaussian read noise, and stored as 16-bit. Nothing is
darkened: this is a dim, noisy frame as a camera gives it, so what the network can add
is denoising (and its tone curve, which the affine fit does not forgive).

Run from the repository root: ``python -m benchmarks.bench_shot_noise``.
"""

import sys

import numpy as np
from scipy import ndimage

import napari_lowlight
from napari_lowlight.synthesis import add_noise

from . import _report
from .bench_quality import SLIDER_ALPHAS, to_unit
from .test_images import fluorescence_cells, point_sources, quantise

#: The slider reaches 0 (denoise only), below the quality benchmark's alphas.
SHOT_SLIDER_ALPHAS = (0.0, *SLIDER_ALPHAS)
#: Photon counts at full intensity, and the read noise (intensity units) added to all.
PHOTONS = (10, 30, 100, 1000)
READ_NOISE = 0.005
FULL = dict(frames=3, side=256)
QUICK = dict(frames=1, side=64)
METHODS = (
    "noisy frame",
    "Gaussian smoothing, sigma 1 px",
    'ours, α="auto"',
    "ours, α=0 (denoise only)",
    "ours, α=0.5",
    "ours, best slider α (oracle)",
    "ours, fluorescence weights, α=0",
)


def affine_psnr(reference, output):
    """PSNR (data range 1) of ``output`` after the least-squares fit ``a * output + b`` to ``reference``."""
    design = np.stack([output.ravel(), np.ones(output.size)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, reference.ravel(), rcond=None)
    mse = np.mean((reference - (a * output + b)) ** 2)
    return float(10 * np.log10(1.0 / mse))


def frames(count, side):
    """Clean reference frames: name -> float image in [0, 1]."""
    made = {}
    for k in range(count):
        made[f"cells{k}"] = fluorescence_cells((side, side), seed=300 + k)
        made[f"stars{k}"] = point_sources((side, side), seed=400 + k)
    return made


def evaluate(reference, noisy_stored, model, fluorescence_model):
    """Affine-fit PSNR of every method on one noisy frame (uint16)."""
    noisy = to_unit(noisy_stored)
    scores = {
        METHODS[0]: affine_psnr(reference, noisy),
        METHODS[1]: affine_psnr(reference, ndimage.gaussian_filter(noisy, 1.0)),
    }
    scores[METHODS[2]] = affine_psnr(reference, to_unit(napari_lowlight.restore(noisy_stored, "auto", model=model)))
    # One Estimate-Net pass serves every fixed alpha: enhance on its difference map equals restore.
    difference = napari_lowlight.estimate_difference(noisy_stored, model=model)
    by_alpha = {
        alpha: affine_psnr(reference, to_unit(napari_lowlight.enhance(noisy_stored, difference, alpha, model=model)))
        for alpha in SHOT_SLIDER_ALPHAS
    }
    scores[METHODS[3]], scores[METHODS[4]] = by_alpha[0.0], by_alpha[0.5]
    scores[METHODS[5]] = max(by_alpha.values())
    denoised = napari_lowlight.restore(noisy_stored, 0.0, model=fluorescence_model)
    scores[METHODS[6]] = affine_psnr(reference, to_unit(denoised))
    return scores


def run(*, frame_count, side, model_path=None, seed=0, device="auto", log=sys.stderr):
    """Mean affine-fit PSNR per method and photon count.

    Returns
    -------
    dict
        ``scores`` (method -> photons -> mean PSNR) and the set-up.
    """
    model = napari_lowlight.load_model(model_path, device=device)
    fluorescence_model = napari_lowlight.load_model("fluorescence", device=device)
    references = frames(frame_count, side)
    per_level = {method: {} for method in METHODS}
    for photons in PHOTONS:
        results = []
        for index, (name, reference) in enumerate(references.items()):
            rng = np.random.default_rng([seed, photons, index])
            noisy = add_noise(reference.astype(np.float32), rng, "poisson-gaussian", READ_NOISE, photons)
            results.append(evaluate(reference, quantise(noisy, np.uint16), model, fluorescence_model))
            print(f"{photons} photons, {name}: " + ", ".join(f"{m} {s:.2f}" for m, s in results[-1].items()), file=log)
        for method in METHODS:
            per_level[method][photons] = float(np.mean([r[method] for r in results]))
    return dict(scores=per_level, frames=list(references), side=side, seed=seed), model


def format_report(result, *, model_text, machine, command, quick):
    """The markdown of the shot-noise section (set-up, table, the command to rerun it)."""
    lines = _report.section_header(
        "Shot-noise removal (the microscopy metric on simulated frames)",
        command=command,
        machine=machine,
        model_text=model_text,
        quick=quick,
        images_word="tiny frames",
    )
    lines += [
        f"Frames: {', '.join(result['frames'])} ({result['side']}x{result['side']}, generated cells and star fields,"
        " seeds unused elsewhere), Poisson shot noise with the given photon count at full intensity plus"
        f" Gaussian read noise of sigma {READ_NOISE}, clipped and stored as 16-bit; seed {result['seed']}."
        " Cells are the mean PSNR (dB) after the least-squares affine fit of each output to the clean frame,"
        " the metric BENCHMARK.md sets for real fluorescence frames against an average of hundreds. The best"
        f" slider alpha (of {SHOT_SLIDER_ALPHAS}) is chosen with the clean frame. The last row restores with the"
        " shipped fluorescence weights (`--model fluorescence`) instead of the model above.",
        "",
        _report.markdown_table(
            ["method"] + [f"{photons} photons" for photons in PHOTONS],
            [[method] + [f"{result['scores'][method][p]:.2f}" for p in PHOTONS] for method in METHODS],
        ),
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = _report.quality_parser("benchmarks.bench_shot_noise", __doc__, quick_help="two tiny frames: a smoke run")
    _report.add_model_option(parser)
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    machine = _report.machine_description()
    result, model = run(
        frame_count=size["frames"], side=size["side"], model_path=args.model, seed=args.seed, device=args.device
    )
    report = format_report(
        result,
        model_text=_report.describe_model(model, args.model),
        machine=machine,
        command=_report.command_line("benchmarks.bench_shot_noise"),
        quick=args.quick,
    )
    _report.publish(args, "shot-noise", report, result)


if __name__ == "__main__":
    main()
