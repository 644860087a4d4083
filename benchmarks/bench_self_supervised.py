"""Self-supervised fine-tuning on real noisy fluorescence frames alone: what it gains.

A microscopist with no clean images fine-tunes shipped weights on their own noisy
frames (``napari-lowlight train FRAMES --self-supervised --from default`` or
``--from fluorescence``, or the Train widget's "noisy frames only") and restores at alpha 0.
This script does exactly that, from each of ``STARTS``, with the library's defaults
(``SELF_SUPERVISED_DEFAULTS``) on the real W2S frames of
``../shared/data/real/w2s``: it fine-tunes on the first ``FULL["train"]`` noisy frames
(the 400-frame averages are never shown to it), then scores every frame against its
average by affine PSNR (BENCHMARK.md): the frames it was tuned on, as a user who denoises
the frames they trained on would, and the other frames of the same microscope, unseen.
Beside it: the noisy frame, the Gaussian blur at the best sigma (an oracle: the
reference chooses it), VST + BM3D, and the shipped weights, all from ``bench_real``.

Run from the repository root: ``python -m benchmarks.bench_self_supervised``.
"""

import copy
import sys
import time

import numpy as np

import napari_lowlight
from napari_lowlight.inference import GUIDE_NOISE_KEY
from napari_lowlight.noise import REFINE_GUIDE_NOISE
from napari_lowlight.training import SELF_SUPERVISED_DEFAULTS, TrainingConfig
from napari_lowlight.weights import shipped_weights_path

from . import _report
from .bench_real import _fluorescence_methods, _ours, score_fluorescence, w2s_pairs

#: Frames fine-tuned on and frames scored; --quick: a smoke run of a few steps.
FULL = dict(train=10, frames=30, steps=None)
QUICK = dict(train=2, frames=3, steps=3)
#: bench_real's methods that this section compares with.
BASELINES = ("noisy frame", "Gaussian blur, best σ (oracle)", "VST + BM3D")
#: Shipped weights a fine-tune starts from (``--from NAME``), each fine-tuned and scored.
STARTS = ("default", "fluorescence")


def fine_tune(frames, settings, start, *, seed=0, device="auto", log=sys.stderr):
    """The shipped weights ``start`` fine-tuned on noisy ``frames`` with ``settings`` (of ``train``); returns (model, seconds)."""
    model = napari_lowlight.load_model(shipped_weights_path(start), device=device)
    began = time.perf_counter()
    for event in napari_lowlight.train(noisy=frames, model=model, seed=seed, device=device, validate_every=0, **settings):
        if event.step % 250 == 0:
            print(f"from {start}, step {event.step}/{event.steps}: loss {event.loss:.5f}", file=log, flush=True)
    return model, time.perf_counter() - began


def run(*, quick=False, seed=0, device="auto", log=sys.stderr):
    """Fine-tune each of ``STARTS``, then score every method on the tuned-on and the unseen frames."""
    size = QUICK if quick else FULL
    pairs = w2s_pairs(size["frames"])
    settings = SELF_SUPERVISED_DEFAULTS | ({} if size["steps"] is None else {"steps": size["steps"]})
    frames = [noisy for _, noisy, _ in pairs[: size["train"]]]
    baselines = _fluorescence_methods(None)
    methods = {name: baselines[name] for name in BASELINES}
    seconds, auto_alpha, guide_noise = {}, {}, {}
    for start in STARTS:
        shipped = napari_lowlight.load_model(shipped_weights_path(start), device=device)
        tuned, seconds[start] = fine_tune(frames, settings, start, seed=seed, device=device, log=log)
        guide_noise[start] = tuned.training_config[GUIDE_NOISE_KEY]
        # The same weights refined with the factor chosen for the shipped ones: what the calibration changed.
        uncalibrated = copy.deepcopy(tuned)
        del uncalibrated.training_config[GUIDE_NOISE_KEY]
        auto_alpha[start] = float(np.mean([napari_lowlight.estimate_alpha(stored, model=tuned, photograph=True) for _, stored, _ in pairs]))
        methods |= {
            f"shipped {start} weights, α=0": lambda stored, reference, m=shipped: _ours(stored, m, 0.0),
            f"fine-tuned from {start}, α=0": lambda stored, reference, m=tuned: _ours(stored, m, 0.0),
            f"fine-tuned from {start}, α=0, ensemble": lambda stored, reference, m=tuned: _ours(
                stored, m, 0.0, ensemble=True
            ),
            f"fine-tuned from {start}, α=0, unrefined (refine=False)": lambda stored, reference, m=tuned: _ours(
                stored, m, 0.0, refine=False
            ),
            f"fine-tuned from {start}, α=0, refinement not calibrated": lambda stored, reference, m=uncalibrated: _ours(
                stored, m, 0.0
            ),
        }
    scores, seconds_in_all = score_fluorescence(pairs, methods, log)
    split = size["train"]
    return dict(
        frames=[name for name, _, _ in pairs],
        train_frames=split,
        settings=settings,
        mask_fraction=TrainingConfig.mask_fraction,  # the default
        seconds=seconds,
        seconds_per_frame={m: t / len(pairs) for m, t in seconds_in_all.items()},
        tuned_auto_alpha=auto_alpha,
        guide_noise=guide_noise,
        psnr={m: (float(np.mean(s[:split])), float(np.mean(s[split:])) if s[split:] else None) for m, s in scores.items()},
        seed=seed,
    )


def format_report(result, *, machine, command, quick):
    """The markdown of the self-supervised section."""
    lines = _report.section_header(
        "Self-supervised fine-tuning on real noisy fluorescence frames",
        command=command,
        machine=machine,
        model_text="the shipped default and fluorescence weights, each then fine-tuned here on noisy frames alone",
        quick=quick,
        images_word="a few frames",
    )
    tuned_on, total = result["train_frames"], len(result["frames"])
    settings = ", ".join(f"{name} {value:g}" for name, value in result["settings"].items())
    minutes = " and ".join(f"{seconds / 60:.1f} minutes from {start}" for start, seconds in result["seconds"].items())
    alphas = " and ".join(f"{alpha:.2f} from {start}" for start, alpha in result["tuned_auto_alpha"].items())
    factors = " and ".join(f"{factor:g} from {start}" for start, factor in result["guide_noise"].items())
    lines += [
        f"Each shipped weights file fine-tuned by `train(noisy=...)` with `SELF_SUPERVISED_DEFAULTS` ({settings};"
        f" blind spots on {result['mask_fraction']:.2%} of the pixels, alpha 0, seed {result['seed']}) on the first"
        f" {tuned_on} noisy frames of"
        " `../shared/data/real/w2s` (512x512, 8-bit, one widefield frame each; their 400-frame averages"
        f" only score), as `napari-lowlight train FRAMES --self-supervised --from NAME` does. The fine-tunes took"
        f" {minutes} ({result['settings']['steps']} steps each) on this machine. Affine PSNR (dB) against the"
        f" 400-frame average (BENCHMARK.md), averaged over the {tuned_on} frames tuned on and over the"
        f" {total - tuned_on} other frames of the set, which the fine-tune never saw. The Gaussian's sigma is chosen"
        ' per frame with the reference (an oracle); VST + BM3D as in "Real images". "ensemble" restores with'
        " `ensemble=True` (`--ensemble`: the network averaged over the 8 flips and quarter turns of the frame)."
        " At alpha 0 every row of ours is refined, as `restore` does by default (`refine=True`: the Wiener filter"
        ' guided by the network\'s output under the frame\'s fitted noise); "unrefined" is the network\'s output alone.'
        " Each fine-tune ends by calibrating the refinement on the frames it was tuned on (Noise2Self's"
        " blind spots, no reference: docs/method.md); the first pass's noise factor it chose was"
        f" {factors} (the shipped weights refine with {REFINE_GUIDE_NOISE:g}); \"refinement not calibrated\""
        f" refines the same fine-tuned weights with {REFINE_GUIDE_NOISE:g}."
        " Seconds per frame include the Gaussian's search over sigma. \"auto\" restores these grey frames at alpha 0,"
        " as the rows at alpha 0; the fine-tuned models' alpha estimator, asked to read them as photographs"
        f" (`estimate_alpha(photograph=True)`), answers {alphas} on average.",
        "",
        _report.markdown_table(
            ["method", f"{tuned_on} frames tuned on", f"{total - tuned_on} unseen frames", "seconds per frame"],
            [
                [m, f"{a:.2f}", "–" if b is None else f"{b:.2f}", f"{result['seconds_per_frame'][m]:.2f}"]
                for m, (a, b) in result["psnr"].items()
            ],
        ),
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = _report.quality_parser(
        "benchmarks.bench_self_supervised", __doc__, quick_help="a few frames and steps: a smoke run"
    )
    args = parser.parse_args(argv)
    machine = _report.machine_description()
    result = run(quick=args.quick, seed=args.seed, device=args.device)
    report = format_report(
        result, machine=machine, command=_report.command_line("benchmarks.bench_self_supervised"), quick=args.quick
    )
    _report.publish(args, "self-supervised", report, result)


if __name__ == "__main__":
    main()
