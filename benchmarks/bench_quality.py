"""Synthetic quality benchmark (BENCHMARK.md protocols P1 and P2) against the baselines.

Run from the repository root::

    python -m benchmarks.bench_quality            # full run, writes docs/benchmarks.md
    python -m benchmarks.bench_quality --quick    # smoke run on 4 tiny images, prints only

Every method gets the low image as the user's file would hold it (grey: 16-bit,
RGB: 8-bit) and, where stated, the true alpha; never gamma, never the clean image
(except the oracles, which are labelled as such). PSNR and SSIM use scikit-image
with ``data_range=1`` (SSIM with ``channel_axis=-1`` for RGB), averaged over images.
"""

import sys
import time

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import napari_lowlight

from . import _report
from .baselines import BASELINES, ORACLE_GAMMA
from .test_images import load_test_set

__all__ = ["make_cases", "degrade", "to_unit", "score", "evaluate_case", "run", "main"]

#: Alphas reachable with the viewer's slider (BENCHMARK.md: "best of alpha in ...").
SLIDER_ALPHAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
#: P2's alpha choices, gamma range (log-uniform) and Gaussian sigma range (uniform).
P2_ALPHAS = (0.5, 1.0, 1.5, 2.0)
P2_GAMMA = (0.5, 2.0)
P2_SIGMA = (0.0, 0.03)
#: P2 draws are split at this Gaussian sigma to show where the oracle gamma wins.
P2_QUIET_SIGMA = 0.01
#: Column key -> heading.
PROTOCOLS = {
    "P1-0.02": "P1 (α=1, γ=0.5, σ=0.02)",
    "P1-0": "P1 (α=1, γ=0.5, σ=0)",
    "P2": "P2 (random α, γ, σ)",
}
OURS = (
    "ours, true α",
    'ours, α="auto"',
    # "auto" denoises grey images (alpha 0); what the estimator reads of these darkened photographs:
    "ours, α estimated as a photograph (estimate_alpha(photograph=True))",
    "ours, best slider α (oracle)",
    # Eq. 5 clips greys to black above alpha 1: what keeping blacks black costs on its own images.
    "ours, true α, blacks lifted (keep_black=False)",
)
#: Test-set size and P2 draws of a full run and of a --quick smoke run.
FULL = dict(max_side=320, p2_draws=6)
QUICK = dict(max_side=64, p2_draws=1)
GROUPS = {"grey16": "Grey, stored as 16-bit", "rgb8": "RGB, stored as 8-bit"}
#: The paper's Table 1 (its own synthetic test images, not these).
PAPER_TABLE_1 = (("LIME", 17.23, 0.78), ("LLNet", 16.35, 0.73), ("paper (deep residual network)", 18.12, 0.85))


def make_cases(images, *, seed=0, p2_draws=6):
    """The degradations to apply: one case per (image, protocol[, draw]).

    Parameters
    ----------
    images : list of BenchImage
    seed : int
        Seeds P2's draws and every case's noise, independently of the order of runs.
    p2_draws : int
        Random degradations per image under P2.

    Returns
    -------
    list of dict
        Keys: image, protocol, alpha, gamma, sigma, noise_seed.
    """
    cases = []
    for index, image in enumerate(images):
        # One generator per (seed, image, stream): adding images or draws never changes
        # the degradation of the others.
        p1_noise = int(np.random.default_rng([seed, index, 0]).integers(2**31))
        for protocol, sigma in (("P1-0.02", 0.02), ("P1-0", 0.0)):
            cases.append(dict(image=image, protocol=protocol, alpha=1.0, gamma=0.5, sigma=sigma, noise_seed=p1_noise))
        for draw in range(p2_draws):
            rng = np.random.default_rng([seed, index, 1, draw])
            cases.append(
                dict(
                    image=image,
                    protocol="P2",
                    alpha=float(rng.choice(P2_ALPHAS)),
                    gamma=float(np.exp(rng.uniform(np.log(P2_GAMMA[0]), np.log(P2_GAMMA[1])))),
                    sigma=float(rng.uniform(*P2_SIGMA)),
                    noise_seed=int(rng.integers(2**31)),
                )
            )
    return cases


def score(clean, restored):
    """PSNR and SSIM of a restored float image against the clean one (data range 1).

    Returns
    -------
    psnr, ssim : float
    """
    channel_axis = -1 if clean.ndim == 3 else None
    psnr = peak_signal_noise_ratio(clean, restored, data_range=1.0)
    ssim = structural_similarity(clean, restored, data_range=1.0, channel_axis=channel_axis)
    return float(psnr), float(ssim)


def to_unit(stored):
    """An integer image as floats in [0, 1] (divided by its dtype's maximum)."""
    return stored / float(np.iinfo(stored.dtype).max)


def degrade(case):
    """The low image of a case, in its image's storage dtype (as a user's file holds it).

    Parameters
    ----------
    case : dict
        From :func:`make_cases`.

    Returns
    -------
    ndarray
        Same shape and dtype as ``case["image"].stored``.
    """
    image = case["image"]
    # synthesize_low_light quantises integer input to its dtype.
    return napari_lowlight.synthesize_low_light(
        image.stored,
        case["alpha"],
        case["gamma"],
        noise="gaussian",
        noise_sigma=case["sigma"],
        seed=case["noise_seed"],
        channel_axis=image.channel_axis,
    )


def evaluate_case(case, model, *, device="auto"):
    """Degrade one clean image, run every method on it and score the outputs.

    Parameters
    ----------
    case : dict
        From :func:`make_cases`.
    model : torch.nn.Module
        The network, loaded once (``restore`` would otherwise reload it every call).
    device : str
        Device of the network.

    Returns
    -------
    dict
        ``scores`` (method -> (psnr, ssim)), ``seconds`` (method -> s), ``alpha_estimated``,
        ``alpha_best`` and the case's parameters.
    """
    image = case["image"]
    clean = image.clean
    axis = image.channel_axis
    low_stored = degrade(case)
    low = to_unit(low_stored)
    scores, seconds = {}, {}

    def timed(name, function):
        start = time.perf_counter()
        output = function()
        seconds[name] = time.perf_counter() - start
        return output

    for name, baseline in BASELINES.items():
        scores[name] = score(clean, timed(name, lambda: baseline(low, clean)))

    # The network sees the stored integers, as a user's file would give them.
    common = dict(model=model, channel_axis=axis, device=device)

    def restored_score(name, alpha, **options):
        restored = timed(name, lambda: napari_lowlight.restore(low_stored, alpha, **options, **common))
        scores[name] = score(clean, to_unit(restored))

    restored_score(OURS[0], case["alpha"])
    restored_score(OURS[1], "auto")
    alpha_estimated = napari_lowlight.estimate_alpha(low_stored, model=model, channel_axis=axis, photograph=True)
    restored_score(OURS[2], alpha_estimated)

    # The slider path: Estimate-Net once, Enhance-Net per alpha; keep the best PSNR.
    def slider():
        difference = napari_lowlight.estimate_difference(low_stored, **common)
        candidates = {}
        for a in SLIDER_ALPHAS:
            candidates[a] = score(clean, to_unit(napari_lowlight.enhance(low_stored, difference, a, **common)))
        best = max(candidates, key=lambda a: candidates[a][0])
        return best, candidates[best]

    alpha_best, scores[OURS[3]] = timed(OURS[3], slider)
    restored_score(OURS[4], case["alpha"], keep_black=False)
    return dict(
        image=image.name,
        group=image.group,
        protocol=case["protocol"],
        alpha=case["alpha"],
        gamma=case["gamma"],
        sigma=case["sigma"],
        alpha_estimated=alpha_estimated,
        alpha_best=alpha_best,
        scores=scores,
        seconds=seconds,
    )


def _mean_scores(results, group, protocol, method):
    pairs = [r["scores"][method] for r in results if r["group"] == group and r["protocol"] == protocol]
    if not pairs:
        return None
    return tuple(np.mean(pairs, axis=0))


def _cell(pair):
    return "—" if pair is None else f"{pair[0]:.2f} / {pair[1]:.3f}"


def _p2_by_noise(results, group):
    """One line: ours (true alpha) minus the best global gamma on P2, for quiet and noisy draws."""
    parts = []
    for label, quiet in ((f"sigma < {P2_QUIET_SIGMA}", True), (f"sigma >= {P2_QUIET_SIGMA}", False)):
        p2 = [r for r in results if r["group"] == group and r["protocol"] == "P2"]
        cases = [r for r in p2 if (r["sigma"] < P2_QUIET_SIGMA) == quiet]
        if cases:
            gain = np.mean([r["scores"][OURS[0]][0] - r["scores"][ORACLE_GAMMA][0] for r in cases])
            parts.append(f"{label} {gain:+.2f} dB ({len(cases)} draws)")
    return "P2, ours at the true α minus the best global gamma (oracle), mean PSNR: " + ", ".join(parts) + "."


def format_report(results, images, *, model_text, machine, command, seed, p2_draws, max_side, quick):
    """The markdown of the quality section (tables, set-up and the command to rerun it)."""
    lines = _report.section_header(
        "Synthetic quality (P1, P2)", command=command, machine=machine, model_text=model_text, quick=quick,
        images_word="tiny images",
    )
    for group, title in GROUPS.items():
        names = [image.name for image in images if image.group == group]
        lines.append(f"- {title}: {', '.join(names)}")
    lines += [
        f"- Longer side at most {max_side} px (bundled scikit-image images downscaled, generated scenes"
        " made at that size); none is in the training data.",
        f"- P2: {p2_draws} draw(s) per image, alpha from {P2_ALPHAS}, gamma log-uniform in {P2_GAMMA},"
        f" sigma uniform in {P2_SIGMA}, seed {seed}.",
        "- Cells are mean PSNR (dB) / mean SSIM against the clean image. \"Oracle\" rows see the clean image:"
        " the best global gamma is an upper bound for any tone curve; the best slider alpha"
        f" (of {SLIDER_ALPHAS}) is what a user reaches by moving the slider.",
        "- At alpha = 1, gamma = 0.5 the generator is exactly the power law I' = I^1.5: without noise the"
        " oracle gamma (1/1.5) inverts P1 up to quantisation and clipping, so it is no real competitor there.",
        "",
    ]
    methods = list(BASELINES) + list(OURS)
    for group, title in GROUPS.items():
        count = sum(image.group == group for image in images)
        if not count:
            continue
        lines += [f"### {title} ({count} images)", ""]
        rows = [[method] + [_cell(_mean_scores(results, group, p, method)) for p in PROTOCOLS] for method in methods]
        lines += [_report.markdown_table(["method"] + list(PROTOCOLS.values()), rows), ""]
        errors = {}
        for protocol in PROTOCOLS:
            cases = [r for r in results if r["group"] == group and r["protocol"] == protocol]
            errors[protocol] = np.mean([abs(r["alpha_estimated"] - r["alpha"]) for r in cases])
        lines += [
            "Mean |estimated alpha (photograph=True) - true alpha|: " + ", ".join(f"{key} {value:.2f}" for key, value in errors.items()) + ".",
            "",
            _p2_by_noise(results, group),
            "",
        ]
    lines += [
        "Paper, Table 1 (its own synthetic images and generator, RGB; for orientation, not the same test):",
        "",
        _report.markdown_table(["method", "PSNR", "SSIM"], [[m, f"{p:.2f}", f"{s:.2f}"] for m, p, s in PAPER_TABLE_1]),
    ]
    return "\n".join(lines)


def run(*, model_path=None, quick=False, seed=0, p2_draws=6, max_side=320, device="auto", log=sys.stderr):
    """Run the benchmark.

    Returns
    -------
    results : list of dict
        One per case (see :func:`evaluate_case`).
    images : list of BenchImage
    model : torch.nn.Module
    """
    model = napari_lowlight.load_model(model_path, device=device)
    images = load_test_set(max_side=max_side, quick=quick)
    cases = make_cases(images, seed=seed, p2_draws=p2_draws)
    results = []
    for number, case in enumerate(cases, 1):
        result = evaluate_case(case, model, device=device)
        results.append(result)
        ours = result["scores"][OURS[0]]
        print(
            f"[{number}/{len(cases)}] {result['image']:>14} {result['protocol']:>7} alpha={result['alpha']:.2f}"
            f" gamma={result['gamma']:.2f} sigma={result['sigma']:.3f}: ours {ours[0]:.2f} dB / {ours[1]:.3f}"
            f" ({sum(result['seconds'].values()):.1f} s)",
            file=log,
            flush=True,
        )
    return results, images, model


def main(argv=None):
    parser = _report.quality_parser("benchmarks.bench_quality", __doc__, quick_help="4 tiny images, 1 P2 draw: a smoke run")
    _report.add_model_option(parser)
    parser.add_argument("--p2-draws", type=int, default=None, help="random degradations per image (default 6)")
    parser.add_argument("--max-side", type=int, default=None, help="longer side of the test images (default 320)")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    max_side = args.max_side or size["max_side"]
    p2_draws = args.p2_draws or size["p2_draws"]
    # Taken before the run: the load average should show the machine's state, not ours.
    machine = _report.machine_description()
    results, images, model = run(
        model_path=args.model,
        quick=args.quick,
        seed=args.seed,
        p2_draws=p2_draws,
        max_side=max_side,
        device=args.device,
    )
    report = format_report(
        results,
        images,
        model_text=_report.describe_model(model, args.model),
        machine=machine,
        command=_report.command_line("benchmarks.bench_quality"),
        seed=args.seed,
        p2_draws=p2_draws,
        max_side=max_side,
        quick=args.quick,
    )
    _report.publish(args, "quality", report, results)


if __name__ == "__main__":
    main()
