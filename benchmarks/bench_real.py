"""Real images (BENCHMARK.md "Real data" and protocol P3) against the peers, in one run.

Run from the repository root (``pip install bm3d`` first, the ``benchmarks`` extra)::

    python -m benchmarks.bench_real            # full run, writes docs/benchmarks.md and the contact sheet
    python -m benchmarks.bench_real --quick    # smoke run on a few images, prints only

Four parts, all on images that no training recipe of this project uses:

* **Fluorescence**: the real W2S pairs in ``../shared/data/real/w2s`` (one widefield frame
  against the average of 400), PSNR after the least-squares affine fit ``a * out + b`` to
  the average. Peers: Gaussian blur at the best sigma per frame (chosen with the
  reference: an upper bound for it), BM3D and non-local means on the variance-stabilised
  frame, with a noise model fitted to the frame itself (no reference); ours at alpha 0 and
  "auto". Each method also per channel (fluorescent label), the last digit of the file name.
* **P3**: held-out photographs (BSDS500's test split) darkened as a camera would record
  them (:func:`camera_darkening`), which is not the generator any recipe trains on;
  PSNR / SSIM against the photograph, and "GT-mean" PSNR (the output scaled to the
  reference's mean). Everyone gets the low image only; ours uses alpha "auto".
* **P0**: the same held-out photographs as they are, which need no restoration: PSNR / SSIM
  against the photograph itself and the detail each method keeps. A restorer should give
  them back nearly unchanged, not smooth their texture away as noise or blow their skies.
* **Dark photographs** without a reference (the real DICM set): a contact sheet to look
  at, and per method numbers a reader can check without a reference: mean brightness,
  the share of pixels at the maximum in any channel, and the noise (MAD of a high-pass)
  in the darkest tenth of the input's pixels.
"""

import io
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from scipy import ndimage
from skimage.exposure import equalize_adapthist
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import denoise_nl_means

import napari_lowlight
from napari_lowlight.noise import fit_noise
from napari_lowlight.weights import shipped_weights_path

from . import _report
from .bench_shot_noise import affine_psnr
from .lime import lime
from .peers import apply_peer, load_peers

__all__ = ["camera_darkening", "srgb_to_linear", "linear_to_srgb", "run", "main"]

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
W2S_DIR = SHARED / "real" / "w2s"
DARK_PHOTOS_DIR = SHARED / "real" / "dark_photos"
#: Held out of every recipe: BSDS500's test split (the recipes train on its train and val splits;
#: grey400, DnCNN's Train400, holds grey crops of some of the same scenes).
P3_DIR = SHARED / "train" / "bsds500" / "test"
CONTACT_SHEET = _report.ROOT / "docs" / "images" / "real_dark_photos.jpg"
GAUSSIAN_SIGMAS = (1.0, 1.5, 2.0, 3.0)
#: Input values counted as black by the no-reference measures (at most 2 of 255 levels).
BLACK = 2 / 255
#: P3's ranges (BENCHMARK.md).
P3_EXPOSURE = (8.0, 30.0)
P3_PHOTONS = (20.0, 500.0)
P3_READ_NOISE = (0.001, 0.01)
P3_JPEG_QUALITY = 90
FULL = dict(w2s=30, p3=24, photos=54, sheet=8)
QUICK = dict(w2s=2, p3=2, photos=3, sheet=2)


#: Ours at alpha 0, on photographs that need nothing: what a user who turns the slider down gets.
DENOISE_ONLY = 'ours, α=0 (denoise only)'

#: The fluorescence weights' output without the Wiener refinement: what the refinement adds.
UNREFINED = "ours, fluorescence weights, α=0, unrefined (refine=False)"
#: The alphas P3's photographs are also restored at, as a user moving the slider would see them.
SLIDER_ALPHAS = (0.0, 0.5, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
#: A fall in mean brightness between two of them that counts as the restore growing darker.
DARKER = 0.01
BEST_SLIDER = 'ours, best slider α per photograph (oracle)'
#: Ours without ``keep_black``: the nets' output as it is, to show what keeping blacks black changes.
BLACKS_LIFTED = 'ours, α="auto", blacks lifted (keep_black=False)'


def srgb_to_linear(value):
    """The inverse sRGB transfer function, floats in [0, 1]."""
    value = np.asarray(value, dtype=np.float64)
    return np.where(value <= 0.04045, value / 12.92, ((value + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(value):
    """The sRGB transfer function, floats in [0, 1]."""
    value = np.clip(np.asarray(value, dtype=np.float64), 0, 1)
    return np.where(value <= 0.0031308, 12.92 * value, 1.055 * value ** (1 / 2.4) - 0.055)


def camera_darkening(photo, rng):
    """BENCHMARK.md's P3: ``photo`` as a camera would record it with far too little light.

    Undo the sRGB curve, divide the linear exposure by a factor in [8, 30], draw Poisson
    shot noise per colour channel (a pixel white in ``photo`` collects N in [20, 500]
    photons in the dark capture) plus Gaussian read noise (sigma in [0.001, 0.01] of the
    dark capture's linear range), apply the sRGB curve again and store the result as an
    8-bit PNG or a quality-90 JPEG (one of the two at random).

    Parameters
    ----------
    photo : ndarray, shape (H, W, 3)
        sRGB photograph, floats in [0, 1].
    rng : numpy.random.Generator

    Returns
    -------
    low : ndarray of uint8, shape (H, W, 3)
        The stored dark capture, decoded.
    settings : dict
        The drawn exposure factor, photon count, read noise and storage format.
    """
    exposure = rng.uniform(*P3_EXPOSURE)
    photons = np.exp(rng.uniform(*np.log(P3_PHOTONS)))
    read_noise = rng.uniform(*P3_READ_NOISE)
    jpeg = bool(rng.random() < 0.5)
    linear = srgb_to_linear(photo)
    # The dark capture's linear value is linear / exposure; a reference white collects `photons`.
    electrons = rng.poisson(linear * photons)
    dark = electrons / (photons * exposure) + rng.normal(0.0, read_noise, size=linear.shape)
    stored = np.round(linear_to_srgb(dark) * 255).astype(np.uint8)
    if jpeg:
        buffer = io.BytesIO()
        iio.imwrite(buffer, stored, extension=".jpg", quality=P3_JPEG_QUALITY)
        stored = iio.imread(buffer.getvalue(), extension=".jpg")
    settings = dict(exposure=exposure, photons=photons, read_noise=read_noise, storage="JPEG 90" if jpeg else "PNG")
    return stored, settings


def _unit(stored):
    return stored.astype(np.float64) / 255.0


def _ours(stored, model, alpha, **options):
    channel_axis = -1 if stored.ndim == 3 else None
    restored = napari_lowlight.restore(stored, alpha, model=model, channel_axis=channel_axis, **options)
    return _unit(restored)


def stabilised(noisy, denoise):
    """Denoise a Poisson-Gaussian frame through the generalised Anscombe transform.

    The transform makes the noise Gaussian of unit variance, ``denoise`` (a function of
    the transformed frame that expects that) removes it, and the algebraic inverse maps
    back: the classic VST + BM3D pipeline, with the noise model the library fits to the
    frame alone (:func:`napari_lowlight.noise.fit_noise`, which ``restore``'s refinement uses).
    """
    noise = fit_noise(noisy)
    return noise.unstabilise(denoise(noise.stabilise(noisy)))


def _fluorescence_methods(model, fluorescence_model=None):
    """Method name -> function (noisy uint8 frame, reference) -> output in [0, 1].

    ``fluorescence_model`` (the shipped fluorescence weights, say) adds its rows at alpha 0, "auto" and
    alpha 0 with the self-ensemble (``ensemble=True``).
    """

    def best_gaussian(stored, reference):
        noisy = _unit(stored)
        return max(
            (ndimage.gaussian_filter(noisy, s) for s in GAUSSIAN_SIGMAS), key=lambda out: affine_psnr(reference, out)
        )

    def bm3d(stored, reference):
        import bm3d as bm3d_package  # the `benchmarks` extra

        return stabilised(_unit(stored), lambda z: bm3d_package.bm3d(z, sigma_psd=1.0))

    def nl_means(stored, reference):
        return stabilised(
            _unit(stored),
            lambda z: denoise_nl_means(z, h=0.8, sigma=1.0, patch_size=5, patch_distance=6, fast_mode=True),
        )

    methods = {
        "noisy frame": lambda stored, reference: _unit(stored),
        "Gaussian blur, best σ (oracle)": best_gaussian,
        "VST + BM3D": bm3d,
        "VST + non-local means": nl_means,
        "ours, α=0 (denoise only)": lambda stored, reference: _ours(stored, model, 0.0),
        'ours, α="auto"': lambda stored, reference: _ours(stored, model, "auto"),
    }
    if fluorescence_model is not None:
        methods["ours, fluorescence weights, α=0"] = lambda stored, reference: _ours(stored, fluorescence_model, 0.0)
        methods['ours, fluorescence weights, α="auto"'] = lambda stored, reference: _ours(stored, fluorescence_model, "auto")
        methods["ours, fluorescence weights, α=0, ensemble"] = lambda stored, reference: _ours(
            stored, fluorescence_model, 0.0, ensemble=True
        )
        methods[UNREFINED] = lambda stored, reference: _ours(stored, fluorescence_model, 0.0, refine=False)
    return methods


def w2s_pairs(count):
    """The first ``count`` W2S pairs: (file name, noisy uint8 frame, reference in [0, 1])."""
    names = sorted(path.name for path in (W2S_DIR / "low").glob("*.png"))[:count]
    return [(name, iio.imread(W2S_DIR / "low" / name), _unit(iio.imread(W2S_DIR / "high" / name))) for name in names]


def w2s_channel(name):
    """The channel (fluorescent label, 0-2) of a W2S file name ``w2s_<field>_<channel>.png``."""
    return int(Path(name).stem.rsplit("_", 1)[1])


def mean_by_channel(frames, scores):
    """Per method, the mean score of each W2S channel: {method: {channel: mean}}.

    The three labels differ in structure, and a method's mean over all frames hides where it loses.
    """
    channels = np.array([w2s_channel(name) for name in frames])
    return {
        method: {int(c): float(np.mean(np.asarray(values)[channels == c])) for c in np.unique(channels)}
        for method, values in scores.items()
    }


def score_fluorescence(pairs, methods, log):
    """Per method (name -> function (noisy frame, reference)): each pair's affine PSNR and the seconds in all."""
    scores = {name: [] for name in methods}
    seconds = {name: 0.0 for name in methods}
    for name, stored, reference in pairs:
        for method, function in methods.items():
            began = time.perf_counter()
            scores[method].append(affine_psnr(reference, function(stored, reference)))
            seconds[method] += time.perf_counter() - began
        print(f"w2s {name}: " + ", ".join(f"{m} {s[-1]:.2f}" for m, s in scores.items()), file=log, flush=True)
    return scores, seconds


def run_fluorescence(model, fluorescence_model, count, log):
    """Mean affine-fit PSNR per method over the first ``count`` W2S pairs."""
    pairs = w2s_pairs(count)
    scores, seconds = score_fluorescence(pairs, _fluorescence_methods(model, fluorescence_model), log)

    def mean_auto_alpha(weights):
        return float(np.mean([napari_lowlight.estimate_alpha(stored, model=weights, photograph=True) for _, stored, _ in pairs]))

    frames = [name for name, _, _ in pairs]
    return dict(
        frames=frames,
        psnr={m: float(np.mean(s)) for m, s in scores.items()},
        psnr_by_channel=mean_by_channel(frames, scores),
        seconds_per_frame={m: s / len(pairs) for m, s in seconds.items()},
        auto_alpha=mean_auto_alpha(model),
        fluorescence_auto_alpha=mean_auto_alpha(fluorescence_model),
    )


def _photo_methods(model, peers):
    """Method name -> function (stored uint8 RGB) -> output in [0, 1] (no reference is given)."""
    methods = {
        "low input": _unit,
        "CLAHE": lambda stored: equalize_adapthist(_unit(stored), clip_limit=0.01),
        "LIME": lambda stored: lime(_unit(stored)),
    }
    for name, network in peers.items():
        methods[name] = lambda stored, network=network: apply_peer(network, _unit(stored))
    methods['ours, α="auto"'] = lambda stored: _ours(stored, model, "auto")
    methods[BLACKS_LIFTED] = lambda stored: _ours(stored, model, "auto", keep_black=False)
    return methods


def _gt_mean_psnr(reference, output):
    scaled = np.clip(output * reference.mean() / max(output.mean(), 1e-6), 0, 1)
    return peak_signal_noise_ratio(reference, scaled, data_range=1.0)


def _score_photos(model, methods, cases, measures, label, log):
    """Mean of ``measures(photo, out)`` per method over ``cases`` of (name, photo, stored, note)."""
    rows = {name: [] for name in methods}
    names, alphas = [], []
    for name, photo, stored, note in cases:
        names.append(name)
        alphas.append(napari_lowlight.estimate_alpha(stored, model=model, channel_axis=-1))
        for method, function in methods.items():
            rows[method].append(measures(photo, np.clip(function(stored), 0, 1)))
        print(f"{label} {name}{note}: " + ", ".join(f"{m} {r[-1][0]:.2f}" for m, r in rows.items()), file=log)
    return dict(
        photos=names,
        scores={m: [float(v) for v in np.mean(r, axis=0)] for m, r in rows.items()},
        auto_alpha=float(np.mean(alphas)),
    )


def _held_out_photos(count):
    return sorted(path.name for path in P3_DIR.glob("*.jpg"))[:count]


def run_p3(model, peers, count, seed, log):
    """Mean PSNR, SSIM and GT-mean PSNR per method on ``count`` darkened held-out photographs.

    Ours is also restored at each alpha of :data:`SLIDER_ALPHAS`, as the Restore widget's
    slider would: the best of them per photograph (an oracle) is a row, and the photographs
    whose restore grows darker somewhere as alpha rises are counted.
    """
    cases = []
    for index, name in enumerate(_held_out_photos(count)):
        photo = _unit(iio.imread(P3_DIR / name))
        stored, drawn = camera_darkening(photo, np.random.default_rng([seed, index]))
        cases.append((name, photo, stored, f" (x{drawn['exposure']:.0f}, {drawn['photons']:.0f} photons, {drawn['storage']})"))

    def measures(photo, out):
        return (
            peak_signal_noise_ratio(photo, out, data_range=1.0),
            structural_similarity(photo, out, data_range=1.0, channel_axis=-1),
            _gt_mean_psnr(photo, out),
        )

    result = _score_photos(model, _photo_methods(model, peers), cases, measures, "p3", log)
    best, best_alphas, darker = [], [], 0
    for name, photo, stored, _ in cases:
        difference = napari_lowlight.estimate_difference(stored, model=model, channel_axis=-1)
        outputs = [_unit(napari_lowlight.enhance(stored, difference, alpha, model=model, channel_axis=-1)) for alpha in SLIDER_ALPHAS]
        scores = [measures(photo, out) for out in outputs]
        pick = int(np.argmax([score[0] for score in scores]))
        best.append(scores[pick])
        best_alphas.append(SLIDER_ALPHAS[pick])
        darker += bool(np.diff([out.mean() for out in outputs]).min() < -DARKER)
        print(f"p3 slider {name}: best alpha {SLIDER_ALPHAS[pick]}, {scores[pick][0]:.2f} dB", file=log)
    result["scores"][BEST_SLIDER] = [float(v) for v in np.mean(best, axis=0)]
    result["best_slider_alpha"] = float(np.mean(best_alphas))
    result["darker_as_alpha_rises"] = darker
    return result


def detail_kept(reference, out):
    """High-frequency energy of ``out`` over that of ``reference`` (RGB floats in [0, 1]).

    The mean squared Laplacian of the luminance: 1 for an unchanged image, below 1 for a
    smoothed one, above 1 where noise or sharpening was added.
    """

    def energy(image):
        return float(np.mean(ndimage.laplace(image.mean(axis=-1)) ** 2))

    return energy(out) / max(energy(reference), 1e-12)


def run_clean_photos(model, peers, count, log):
    """P0: mean PSNR, SSIM and detail kept per method on ``count`` held-out photographs as they are."""
    methods = _photo_methods(model, peers)
    methods.pop("low input")  # the reference itself
    methods[DENOISE_ONLY] = lambda stored: _ours(stored, model, 0.0)

    def cases():
        for name in _held_out_photos(count):
            stored = iio.imread(P3_DIR / name)
            yield name, _unit(stored), stored, ""

    def measures(photo, out):
        return (
            peak_signal_noise_ratio(photo, out, data_range=1.0),
            structural_similarity(photo, out, data_range=1.0, channel_axis=-1),
            detail_kept(photo, out),
        )

    return _score_photos(model, methods, cases(), measures, "p0", log)


def no_reference_measures(low, out):
    """Mean brightness, clipped share, black level and dark-region noise of ``out`` (a restored ``low``).

    Parameters
    ----------
    low, out : ndarray, shape (H, W, 3)
        The input and a method's output, floats in [0, 1].

    Returns
    -------
    (mean, clipped, black_level, dark_noise) : tuple of float
        Mean of all values; share of pixels at 1 in any channel; the mean of ``out`` over
        ``low``'s black pixels (every channel at most ``BLACK`` = 2/255; NaN if it has none):
        black lifted into a grey haze raises it; the median absolute deviation (scaled to a
        Gaussian sigma) of the high-pass ``out - box3(out)`` over the darkest tenth of
        ``low``'s pixels by luminance.
    """
    luminance = low.mean(axis=-1)
    dark = luminance <= np.quantile(luminance, 0.1)
    high_pass = out - ndimage.uniform_filter(out, size=(3, 3, 1))
    values = high_pass[dark].ravel()
    dark_noise = 1.4826 * np.median(np.abs(values - np.median(values)))
    clipped = np.mean((out >= 1.0 - 0.5 / 255).any(axis=-1))
    black = (low <= BLACK).all(axis=-1)
    black_level = out[black].mean() if black.any() else np.nan
    return float(out.mean()), float(clipped), float(black_level), float(dark_noise)


def run_dark_photos(model, peers, count, sheet_rows, log):
    """No-reference measures per method on ``count`` real dark photographs, and sheet rows."""
    methods = _photo_methods(model, peers)
    methods.pop("CLAHE")
    sheet_methods = [m for m in methods if m != BLACKS_LIFTED]  # input | LIME | peers | ours
    measures = {name: [] for name in methods}
    names = sorted(path.name for path in DARK_PHOTOS_DIR.glob("*.jpg"))[:count]
    sheet = []
    for name in names:
        stored = iio.imread(DARK_PHOTOS_DIR / name)
        low = _unit(stored)
        outputs = {method: np.clip(function(stored), 0, 1) for method, function in methods.items()}
        for method, out in outputs.items():
            measures[method].append(no_reference_measures(low, out))
        if len(sheet) < sheet_rows:
            sheet.append([outputs[m] for m in sheet_methods])
        print(f"dark {name}: " + ", ".join(f"{m} mean {v[-1][0]:.3f}" for m, v in measures.items()), file=log)
    # The black level averages the photographs that have black pixels (the same for every method).
    averages = {m: [float(x) for x in np.nanmean(v, axis=0)] for m, v in measures.items()}
    with_black = int(np.isfinite(np.array(measures["low input"])[:, 2]).sum())
    return dict(photos=names, measures=averages, with_black=with_black), (
        sheet_methods,
        sheet,
    )


def contact_sheet(rows, height=160):
    """One uint8 RGB picture: a row per photograph, a column per method, each ``height`` px high."""
    from skimage.transform import resize

    def fitted(image):
        width = round(image.shape[1] * height / image.shape[0])
        return resize(image, (height, width), anti_aliasing=True)

    gap = np.ones((height, 4, 3))
    lines = [np.concatenate([part for image in row for part in (fitted(image), gap)][:-1], axis=1) for row in rows]
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 4), (0, width - line.shape[1]), (0, 0)), constant_values=1) for line in lines]
    return np.round(np.concatenate(lines)[:-4] * 255).astype(np.uint8)


def run(*, model_path=None, quick=False, seed=0, device="auto", log=sys.stderr):
    """Every part of the benchmark; returns the results, the model, and the contact sheet's rows."""
    size = QUICK if quick else FULL
    model = napari_lowlight.load_model(model_path, device=device)
    fluorescence_model = napari_lowlight.load_model(shipped_weights_path("fluorescence"), device=device)
    peers = load_peers()
    result = dict(seed=seed)
    result["fluorescence"] = run_fluorescence(model, fluorescence_model, size["w2s"], log)
    result["p3"] = run_p3(model, peers, size["p3"], seed, log)
    result["p0"] = run_clean_photos(model, peers, size["p3"], log)
    result["dark_photos"], sheet = run_dark_photos(model, peers, size["photos"], size["sheet"], log)
    return result, model, sheet


def format_report(result, *, columns, model_text, machine, command, quick):
    """The markdown of the real-images section."""
    lines = _report.section_header(
        "Real images", command=command, machine=machine, model_text=model_text, quick=quick
    )
    fluorescence, p3, p0, photos = result["fluorescence"], result["p3"], result["p0"], result["dark_photos"]
    channels = sorted(next(iter(fluorescence["psnr_by_channel"].values())))
    lines += [
        "### Widefield fluorescence (real W2S pairs)",
        "",
        f"{len(fluorescence['frames'])} pairs of `../shared/data/real/w2s` (512x512, 8-bit; one frame against"
        " the average of 400). PSNR (dB) after the least-squares affine fit of each output to the average,"
        " as BENCHMARK.md says; BM3D and non-local means run on the generalised Anscombe transform of the frame,"
        " with a Poisson-Gaussian noise model fitted to the frame itself (`napari_lowlight.noise.fit_noise`: no reference);"
        " the Gaussian's sigma (of"
        f" {GAUSSIAN_SIGMAS} px) is chosen per frame with the reference. \"auto\" restores these grey frames at"
        " alpha 0; the alpha estimator, asked to read them as photographs (`estimate_alpha(photograph=True)`), answers"
        f" {fluorescence['auto_alpha']:.2f} on average with the model above and"
        f" {fluorescence['fluorescence_auto_alpha']:.2f} with the shipped fluorescence weights"
        " (`--model fluorescence`; recipe `benchmarks/fluorescence_model.toml`). Each field of view is imaged"
        " in three channels, one fluorescent label each (the last digit of the file name), with structure of"
        " their own; the channel columns average the frames of one channel. \"ensemble\" restores with"
        " `ensemble=True` (`--ensemble`: the network averaged over the 8 flips and quarter turns of the frame)."
        " Below alpha 0.05 every row of ours is refined, as `restore` does by default (`refine=True`: an empirical"
        " Wiener filter guided by the network's output under the frame's fitted noise; docs/method.md);"
        " \"unrefined\" is the network's output alone.",
        "",
        _report.markdown_table(
            ["method", "affine PSNR", *(f"channel {c}" for c in channels), "seconds per frame"],
            [
                [
                    m,
                    f"{fluorescence['psnr'][m]:.2f}",
                    *(f"{fluorescence['psnr_by_channel'][m][c]:.2f}" for c in channels),
                    f"{fluorescence['seconds_per_frame'][m]:.2f}",
                ]
                for m in fluorescence["psnr"]
            ],
        ),
        "",
        "### P3: held-out photographs darkened as a camera records them",
        "",
        f"{len(p3['photos'])} photographs of BSDS500's test split (no recipe trains on them; grey400 holds grey"
        " 180x180 crops of some of the same scenes), darkened by"
        " `camera_darkening` (BENCHMARK.md's P3: linear exposure / [8, 30], Poisson shot noise of [20, 500]"
        " photons for white per channel, read noise, sRGB, 8-bit PNG or JPEG 90), seed"
        f" {result['seed']}. Everyone gets the stored dark image only; ours chose alpha"
        f" {p3['auto_alpha']:.2f} on average at \"auto\". GT-mean: the output scaled to the reference's mean"
        " first (brightness forgiven). Ours was also restored at each alpha of"
        f" {SLIDER_ALPHAS}, as the Restore widget's slider restores: the oracle row takes the alpha"
        f" of highest PSNR per photograph with the reference ({p3['best_slider_alpha']:.2f} on average), and"
        f" on {p3['darker_as_alpha_rises']} of the {len(p3['photos'])} photographs ours grew darker somewhere"
        f" as alpha rose through them (its mean brightness fell by over {DARKER}).",
        "",
        _report.markdown_table(
            ["method", "PSNR", "SSIM", "GT-mean PSNR"],
            [[m, f"{s[0]:.2f}", f"{s[1]:.3f}", f"{s[2]:.2f}"] for m, s in p3["scores"].items()],
        ),
        "",
        "### P0: held-out photographs that need no restoration",
        "",
        f"The same {len(p0['photos'])} photographs as they are stored (JPEG, well exposed): a restorer should"
        " give them back nearly unchanged. PSNR and SSIM against the photograph itself; detail kept: the"
        " high-frequency energy of the output (mean squared Laplacian of the luminance) over the photograph's,"
        " 1 when unchanged, below 1 when smoothed, above 1 when noise or sharpening was added. Ours chose alpha"
        f" {p0['auto_alpha']:.2f} on average at \"auto\".",
        "",
        _report.markdown_table(
            ["method", "PSNR", "SSIM", "detail kept"],
            [[m, f"{s[0]:.2f}", f"{s[1]:.3f}", f"{s[2]:.2f}"] for m, s in p0["scores"].items()],
        ),
        "",
        "### Real dark photographs without a reference (DICM)",
        "",
        f"{len(photos['photos'])} photographs of `../shared/data/real/dark_photos`. Per method, averaged over"
        " them: the mean brightness (input's: first row), the share of pixels at the maximum in any channel"
        " (blown highlights), the black level (the output's mean over the input's black pixels, every channel"
        f" at most 2/255, in the {photos['with_black']} photographs that have them: black lifted into a grey haze"
        " raises it), and the noise in the darkest tenth of the input's pixels (MAD of a 3x3 high-pass, as a"
        " Gaussian sigma: lower is cleaner, but a blurred output scores low too).",
        "",
        _report.markdown_table(
            ["method", "mean brightness", "clipped share", "black level", "dark-region noise"],
            [[m, f"{v[0]:.3f}", f"{v[1]:.4f}", f"{v[2]:.3f}", f"{v[3]:.4f}"] for m, v in photos["measures"].items()],
        ),
        "",
        f"Contact sheet of the first photographs, columns {' | '.join(columns)}:",
        "",
        f"![real dark photographs](images/{CONTACT_SHEET.name})",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = _report.quality_parser("benchmarks.bench_real", __doc__, quick_help="a few images: a smoke run")
    _report.add_model_option(parser)
    args = parser.parse_args(argv)
    machine = _report.machine_description()
    result, model, (columns, sheet) = run(model_path=args.model, quick=args.quick, seed=args.seed, device=args.device)
    report = format_report(
        result,
        columns=columns,
        model_text=_report.describe_model(model, args.model),
        machine=machine,
        command=_report.command_line("benchmarks.bench_real"),
        quick=args.quick,
    )
    _report.publish(args, "real-images", report, result)
    if args.write if args.write is not None else not args.quick:
        iio.imwrite(CONTACT_SHEET, contact_sheet(sheet), quality=85)
        print(f"written to {CONTACT_SHEET}", file=sys.stderr)


if __name__ == "__main__":
    main()
