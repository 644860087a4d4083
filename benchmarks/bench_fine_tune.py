"""Fine-tuning the shipped weights on a few frames of one kind of image: what it gains.

A user with images unlike the default model's training data (a microscope, a telescope)
fine-tunes the shipped weights on a few clean frames of it (the Train widget's "shipped
default weights", or ``napari-lowlight train --from default``) and restores other frames
of the same kind. This script does exactly that for three kinds of image that are not in
its training data, each split into training frames and held-out test frames, and scores
the P2 protocol of BENCHMARK.md on the test frames at the true alpha.

Fine-tuning uses the library's settings for it: Adam at ``FINE_TUNE_LR``, the paper's
batch of 32 patches of 48x48 pixels, the weight average. It is run twice per length:
with BatchNorm frozen at the shipped statistics (``freeze_batchnorm=True``, the default
when fine-tuning) and with BatchNorm normalising by each batch and learning the
statistics of the new frames.

Run from the repository root: ``python -m benchmarks.bench_fine_tune``.
"""

import sys

import numpy as np
from skimage.color import rgb2gray

import napari_lowlight
from napari_lowlight.training import FINE_TUNE_LR

from . import _report
from .bench_quality import P2_ALPHAS, P2_GAMMA, P2_SIGMA, degrade, make_cases, score, to_unit
from .test_images import BenchImage, fit_to_side, fluorescence_cells, quantise, read_bundled

#: Fine-tuning lengths (steps) of a full run and of a --quick smoke run.
FULL = dict(steps=(50, 300), p2_draws=4, side=256)
QUICK = dict(steps=(2,), p2_draws=1, side=64)
BATCHNORM_MODES = {True: "BatchNorm frozen (default)", False: "BatchNorm from each batch"}
BATCH_SIZE, PATCH_SIZE = 32, 48


def _halves(image, side):
    """Left half for training, right half cut into a top and a bottom test frame."""
    image = fit_to_side(image, 2 * side)
    half = image.shape[1] // 2
    right = image[:, half:]
    middle = right.shape[0] // 2
    return [image[:, :half]], [right[:middle], right[middle:]]


def domains(side=256):
    """The kinds of image: name -> (clean training frames, held-out test frames as BenchImage).

    Training frames are floats in [0, 1]; test frames are stored as BENCHMARK.md says
    (grey: 16-bit, RGB: 8-bit). None of them is in the default model's training data.
    """
    fluorescence_train = [fluorescence_cells((side, side), seed=100 + k) for k in range(4)]
    fluorescence_test = [fluorescence_cells((side, side), seed=200 + k) for k in range(2)]
    hubble_train, hubble_test = _halves(rgb2gray(read_bundled("hubble_deep_field.jpg")), side)
    ihc_train, ihc_test = _halves(read_bundled("ihc.png"), side)
    return {
        "fluorescence (generated cells, 16-bit)": (
            fluorescence_train,
            [BenchImage(f"cells{k}", quantise(im, np.uint16), "grey16") for k, im in enumerate(fluorescence_test)],
        ),
        "astronomy (hubble_deep_field, grey 16-bit)": (
            hubble_train,
            [BenchImage(f"hubble{k}", quantise(image, np.uint16), "grey16") for k, image in enumerate(hubble_test)],
        ),
        "histology (ihc, RGB 8-bit)": (
            ihc_train,
            [BenchImage(f"ihc{k}", quantise(image, np.uint8), "rgb8") for k, image in enumerate(ihc_test)],
        ),
    }


def evaluate(model, cases):
    """Mean (PSNR, SSIM) of ``restore`` at the true alpha over ``cases``, without ``keep_black``.

    The test frames are Eq. 5's, whose black inputs hold the grey truths that fine-tuning
    learns to restore for the new kind; keeping blacks black would score the curve, not
    what fine-tuning taught (its cost on Eq. 5's images is in the quality benchmark).
    """
    scores = []
    for case in cases:
        image = case["image"]
        restored = napari_lowlight.restore(
            degrade(case), case["alpha"], model=model, channel_axis=image.channel_axis, keep_black=False
        )
        scores.append(score(image.clean, to_unit(restored)))
    return tuple(np.mean(scores, axis=0))


def fine_tune(frames, *, steps, freeze_batchnorm, seed=0, device="auto"):
    """The shipped weights fine-tuned on ``frames`` (the weight average, in eval mode)."""
    model = napari_lowlight.load_model(device=device)
    channel_axis = [-1 if frame.ndim == 3 else None for frame in frames]
    run = napari_lowlight.train(
        frames,
        model=model,
        steps=steps,
        batch_size=BATCH_SIZE,
        patch_size=PATCH_SIZE,
        lr=FINE_TUNE_LR,
        seed=seed,
        device=device,
        channel_axis=channel_axis,
        validate_every=0,
        freeze_batchnorm=freeze_batchnorm,
    )
    for _ in run:
        pass
    return model


def run(*, steps, p2_draws, side, seed=0, device="auto", log=sys.stderr):
    """Score the shipped weights and every fine-tuning on every kind of image.

    Returns
    -------
    dict
        ``rows`` (label -> kind -> (psnr, ssim)), ``frames`` (kind -> (training, test) counts).
    """
    rows, frames = {}, {}
    for kind, (training, test) in domains(side).items():
        cases = [case for case in make_cases(test, seed=seed, p2_draws=p2_draws) if case["protocol"] == "P2"]
        frames[kind] = (len(training), len(test))
        results = {"shipped weights": evaluate(napari_lowlight.load_model(device=device), cases)}
        for count in steps:
            for freeze, mode in BATCHNORM_MODES.items():
                model = fine_tune(training, steps=count, freeze_batchnorm=freeze, seed=seed, device=device)
                results[f"fine-tuned {count} steps, {mode}"] = evaluate(model, cases)
        for label, pair in results.items():
            rows.setdefault(label, {})[kind] = pair
            print(f"{kind}: {label}: {pair[0]:.2f} dB / {pair[1]:.3f}", file=log, flush=True)
    return dict(rows=rows, frames=frames, steps=list(steps), p2_draws=p2_draws, side=side, seed=seed)


def format_report(result, *, machine, command, quick):
    """The markdown of the fine-tuning section (set-up, table, the command to rerun it)."""
    lines = _report.section_header(
        "Fine-tuning on a few frames of a new kind of image",
        command=command,
        machine=machine,
        model_text="the shipped default weights, then fine-tuned here",
        quick=quick,
        images_word="tiny frames",
    )
    kinds = list(result["frames"])
    lines += [
        "Each kind is split into clean training frames and held-out test frames: generated fluorescence"
        f" cells ({result['side']}x{result['side']}, other seeds than the quality benchmark's), and a bundled"
        f" scikit-image picture downscaled to a longer side of {2 * result['side']} px, its left half for training"
        " and its right half, cut into top and bottom, for testing. "
        + "; ".join(f"{kind}: {train} training, {test} test frames" for kind, (train, test) in result["frames"].items())
        + ".",
        "",
        f"Fine-tuning: Adam at {FINE_TUNE_LR:g}, batch {BATCH_SIZE} of {PATCH_SIZE}x{PATCH_SIZE} patches,"
        f" synthesised low light as in training, seed {result['seed']}. Test: P2 ({result['p2_draws']} draws per"
        f" test frame, alpha from {P2_ALPHAS}, gamma log-uniform in {P2_GAMMA}, sigma uniform in {P2_SIGMA}),"
        " the true alpha given, the network's output as it is (`keep_black=False`: these black inputs hold grey"
        " truths); cells are mean PSNR (dB) / mean SSIM.",
        "",
        _report.markdown_table(
            ["model"] + kinds,
            [
                [label] + [f"{row[kind][0]:.2f} / {row[kind][1]:.3f}" for kind in kinds]
                for label, row in result["rows"].items()
            ],
        ),
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = _report.quality_parser("benchmarks.bench_fine_tune", __doc__, quick_help="tiny frames, 2 steps, 1 draw: a smoke run")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    machine = _report.machine_description()
    result = run(steps=size["steps"], p2_draws=size["p2_draws"], side=size["side"], seed=args.seed, device=args.device)
    command = _report.command_line("benchmarks.bench_fine_tune")
    report = format_report(result, machine=machine, command=command, quick=args.quick)
    _report.publish(args, "fine-tune", report, result)


if __name__ == "__main__":
    main()
