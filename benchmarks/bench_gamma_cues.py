"""How much the image context can tell about gamma: the limit of restoring at the true alpha.

The network is told alpha, never gamma; it sees the tone curve only through the image
context (quantiles of the whole low image, ``napari_lowlight.network.image_context``).
This script asks the best case of that design: a small regressor is fitted to predict
log(gamma) from (context, alpha) on low images synthesised from the recipe's training
data, with the recipe's random alpha, gamma and noise, and is scored on held-out images.
A held-out R^2 near 1 would mean the context pins gamma down; near 0, that gamma is a
guess from the prior and restoration at the true alpha inherits that guess.

A second regressor also sees how local contrast varies with brightness (neighbour
differences per brightness bin, at three scales): the tone curve stretches or squeezes
the contrast of each brightness level, so if natural images had a typical contrast per
level, this would reveal gamma where the quantiles cannot.

It also prints the gamma the first regressor reads from the P1 test images of the
quality benchmark (true gamma 0.5), to show where their contexts point.

Run from the repository root: ``python -m benchmarks.bench_gamma_cues``.
"""

import argparse
import math
import sys

import numpy as np
import torch

import napari_lowlight
from napari_lowlight.intensity import to_unit_float
from napari_lowlight.io import read_image
from napari_lowlight.network import image_context
from napari_lowlight.scenes import generated_scenes
from napari_lowlight.training import CONTEXT_SAMPLES  # pixels per context, as in training

from . import _report
from .test_images import fit_to_side, load_test_set

#: Images are downscaled to this longer side: the context needs no more pixels.
MAX_SIDE = 160
HELD_OUT_FRACTION = 0.2


def recipe_images(recipe=_report.RECIPE, max_side=MAX_SIDE):
    """The recipe's clean training images (folders and generated scenes), as float arrays."""
    options = _report.recipe_options(recipe)
    images = []
    for folder in options.get("data", []):
        for path in sorted((recipe.parent / folder).iterdir()):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
                image, _ = to_unit_float(read_image(path), name=str(path))
                images.append(np.asarray(fit_to_side(image, max_side), np.float32))
    images += generated_scenes(options.get("scenes", 0), (max_side, max_side), seed=options.get("seed", 0))
    return images


#: Brightness bins and scales (block-averaging factors) of the contrast statistics.
CONTRAST_BINS = 8
CONTRAST_SCALES = (1, 2, 4)


def contrast_statistics(low):
    """Log median and 90th percentile of |neighbour difference| per brightness bin and scale.

    ``low`` is a 2-D or (H, W, 3) image in [0, 1]; colour is averaged to grey. Returns a
    tensor of ``2 * CONTRAST_BINS * len(CONTRAST_SCALES)`` values.
    """
    grey = low.mean(-1) if low.ndim == 3 else low
    values = []
    for scale in CONTRAST_SCALES:
        height, width = grey.shape[0] // scale * scale, grey.shape[1] // scale * scale
        coarse = grey[:height, :width].reshape(height // scale, scale, width // scale, scale).mean((1, 3))
        pairs = ((coarse[:, :-1], coarse[:, 1:]), (coarse[:-1, :], coarse[1:, :]))
        level = np.concatenate([((a + b) / 2).ravel() for a, b in pairs])
        difference = np.concatenate([np.abs(a - b).ravel() for a, b in pairs])
        edges = np.quantile(level, np.linspace(0, 1, CONTRAST_BINS + 1)[1:-1])
        bins = np.searchsorted(edges, level, side="right")
        for index in range(CONTRAST_BINS):
            selected = difference[bins == index]
            if selected.size == 0:  # a flat image: every level in one bin
                selected = np.zeros(1)
            values += [np.log(np.median(selected) + 1e-4), np.log(np.quantile(selected, 0.9) + 1e-4)]
    return torch.tensor(values, dtype=torch.float32)


def draw_examples(images, count, rng):
    """Features and log gamma of ``count`` random degradations of random images.

    Returns (context features, contrast statistics, log gamma).
    """
    features, contrasts, targets = [], [], []
    for _ in range(count):
        image = images[rng.integers(len(images))]
        alpha = rng.uniform(0.5, 2.0)
        gamma = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        low = napari_lowlight.synthesize_low_light(
            image, alpha, gamma, noise="gaussian", noise_sigma=rng.uniform(0, 0.03), seed=int(rng.integers(2**31)),
            channel_axis=-1 if image.ndim == 3 else None,
        )
        pixels = low.reshape(-1)[rng.integers(0, low.size, CONTEXT_SAMPLES)]
        features.append(_features(pixels, alpha))
        contrasts.append(contrast_statistics(low))
        targets.append(math.log(gamma))
    return torch.stack(features), torch.stack(contrasts), torch.tensor(targets)


def _features(pixels, alpha):
    context = image_context(torch.from_numpy(np.asarray(pixels, np.float32))[None])[0]
    return torch.cat([context, torch.tensor([alpha], dtype=torch.float32)])


def fit_regressor(features, targets, *, steps=3000, seed=0):
    """A two-layer MLP from features to log gamma (L2 loss, Adam)."""
    torch.manual_seed(seed)
    mean, std = features.mean(0), features.std(0) + 1e-6
    mlp = torch.nn.Sequential(
        torch.nn.Linear(features.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    )
    optimiser = torch.optim.Adam(mlp.parameters(), 1e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(0, len(features), (256,), generator=generator)
        loss = torch.nn.functional.mse_loss(mlp((features[batch] - mean) / std)[:, 0], targets[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return lambda x: mlp((x - mean) / std)[:, 0]


def run(*, fit_draws=12000, test_draws=1500, seed=0):
    images = recipe_images()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    held_out = int(len(images) * HELD_OUT_FRACTION)
    test_images, fit_images = [images[i] for i in order[:held_out]], [images[i] for i in order[held_out:]]
    fit_x, fit_contrast, fit_y = draw_examples(fit_images, fit_draws, rng)
    test_x, test_contrast, test_y = draw_examples(test_images, test_draws, rng)
    predict = fit_regressor(fit_x, fit_y, seed=seed)
    predict_with_contrast = fit_regressor(torch.cat([fit_x, fit_contrast], 1), fit_y, seed=seed)
    with torch.no_grad():
        error = predict(test_x) - test_y
        error_with_contrast = predict_with_contrast(torch.cat([test_x, test_contrast], 1)) - test_y
        p1 = {}
        for image in load_test_set():
            low = napari_lowlight.synthesize_low_light(
                image.clean, 1.0, 0.5, noise="gaussian", noise_sigma=0.02, seed=seed, channel_axis=image.channel_axis
            )
            pixels = low.reshape(-1)[rng.integers(0, low.size, CONTEXT_SAMPLES)]
            p1[image.name] = math.exp(predict(_features(pixels, 1.0)[None]).item())
    return dict(
        images=len(images),
        fit_images=len(fit_images),
        test_images=len(test_images),
        fit_draws=fit_draws,
        test_draws=test_draws,
        r2=1 - float((error**2).mean() / test_y.var()),
        median_factor=math.exp(float(error.abs().median())),
        r2_with_contrast=1 - float((error_with_contrast**2).mean() / test_y.var()),
        median_factor_with_contrast=math.exp(float(error_with_contrast.abs().median())),
        p1_gamma=p1,
    )


def format_report(result, *, machine, command):
    lines = _report.section_header(
        "Gamma from the image context (the limit at the true alpha)", command=command, machine=machine,
        model_text="none (a regressor fitted here)", quick=False,
    )
    lines += [
        f"Low images synthesised from the recipe's {result['images']} training images (benchmarks/default_model.toml,"
        " downscaled to 160 px), alpha uniform in [0.5, 2], gamma log-uniform in [0.5, 2], Gaussian sigma uniform in"
        f" [0, 0.03]; an MLP predicts log(gamma) from the 16 context quantiles and alpha, fitted on {result['fit_draws']}"
        f" draws from {result['fit_images']} images and scored on {result['test_draws']} draws from the"
        f" {result['test_images']} others. A second MLP also sees local contrast per brightness level"
        f" (log median and 90th percentile of neighbour differences in {CONTRAST_BINS} brightness bins, at"
        f" {len(CONTRAST_SCALES)} scales).",
        "",
        _report.markdown_table(
            ["quantity", "context (quantiles, alpha)", "context + contrast per brightness"],
            [
                ["held-out R² of log(gamma)", f"{result['r2']:.2f}", f"{result['r2_with_contrast']:.2f}"],
                [
                    "median factor between predicted and true gamma",
                    f"{result['median_factor']:.2f}",
                    f"{result['median_factor_with_contrast']:.2f}",
                ],
            ],
        ),
        "",
        "Gamma read from the P1 test images (true gamma 0.5, alpha 1, sigma 0.02): "
        + ", ".join(f"{name} {gamma:.2f}" for name, gamma in result["p1_gamma"].items())
        + ".",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_gamma_cues", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    _report.add_output_options(parser)
    args = parser.parse_args(argv)
    args.quick = False
    machine = _report.machine_description()
    result = run(seed=args.seed)
    report = format_report(result, machine=machine, command=_report.command_line("benchmarks.bench_gamma_cues"))
    _report.publish(args, "gamma-cues", report, result)


if __name__ == "__main__":
    sys.exit(main())
