"""The ``napari-lowlight`` command: synthesize, restore, train and demo, outside napari.

Every failure a user can cause (a missing or corrupt file, a bad number, an output
that would overwrite an input, a pickle offered as a model) ends with one line on
stderr naming the problem and a non-zero exit status; input files are never written.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np

from .samples import SAMPLES
from .scenes import DEFAULT_SCENE_KINDS, SCENE_KINDS

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CommandError(Exception):
    """A problem with the command line that is reported as one line."""


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports a usage error in one line, without the usage text."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


#: Bound of the real-valued options: the maths runs in float32, which ends at 3.4e38 and
#: 1.2e-38; an option from 1e-30 to 1e30, times or over an intensity in [0, 1], stays inside.
FLOAT_LIMIT = 1e30
#: Photons at full intensity: numpy's Poisson sampler refuses means beyond about 1e19, and
#: the shot noise of 1e15 photons (3e-8) is already below float32's resolution near 1.
PHOTONS_LIMIT = 1e15
#: Seeds go to numpy and torch; torch takes 64-bit seeds.
SEED_LIMIT = 2**63 - 1
#: Pixels of one training step, batch_size x patch_size**2: every float32 tensor of a
#: batch bigger than this takes more than 8 GiB.
STEP_PIXELS_LIMIT = 2**31


def _number_parser(convert, low: float, high: float, wording: str):
    """An argparse type: ``convert(text)``, refused unless it lies in ``[low, high]``."""
    kind = "an integer" if convert is int else "a number"

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not low <= value <= high:  # NaN compares False
            raise argparse.ArgumentTypeError(f"{text!r} must be {wording}")
        return value

    return parse


_positive_float = _number_parser(float, 1 / FLOAT_LIMIT, FLOAT_LIMIT, f"a positive number, from {1 / FLOAT_LIMIT:g} to {FLOAT_LIMIT:g}")
_non_negative_float = _number_parser(float, 0.0, FLOAT_LIMIT, f"a number >= 0, at most {FLOAT_LIMIT:g}")
_photons = _number_parser(float, 1 / FLOAT_LIMIT, PHOTONS_LIMIT, f"a positive number, at most {PHOTONS_LIMIT:g}")
_positive_int = _number_parser(int, 1, math.inf, "a positive integer")
_non_negative_int = _number_parser(int, 0, math.inf, "an integer >= 0")
_seed = _number_parser(int, 0, SEED_LIMIT, f"an integer >= 0, at most {SEED_LIMIT}")


def _alpha(text: str):
    return "auto" if text == "auto" else _non_negative_float(text)


def _channel_axis(text: str):
    if text in ("auto", "none"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an axis number, 'auto' or 'none'") from None


def _resolve_channel_axis(choice, image: np.ndarray, metadata: dict):
    """``auto``: the library's rule (:func:`napari_lowlight.planes.auto_channel_axis`), or the
    last axis when it holds a TIFF's samples per pixel other than RGB(A) (two channels stored
    per pixel, Y X S: channels, not the width of planes). ``metadata``: :func:`~napari_lowlight.io.read_metadata`'s."""
    from .planes import auto_channel_axis

    if choice == "none":
        return None
    if choice == "auto":
        return -1 if _holds_channel_samples(metadata, image) else auto_channel_axis(image.shape)
    return choice


def _holds_channel_samples(metadata: dict, image) -> bool:
    """Whether ``image``'s last axis holds a TIFF's samples per pixel other than RGB(A)."""
    import tifffile

    options = metadata.get("tiff", {})
    return options.get("planarconfig") == tifffile.PLANARCONFIG.CONTIG and image.shape[-1] not in (3, 4)


def _say_blank_pixels(image, source) -> None:
    """Say how many NaN (blank) pixels ``image`` has, which restore fills for the network and keeps blank."""
    blank = np.count_nonzero(np.isnan(image)) if isinstance(image, np.ndarray) and image.dtype.kind == "f" else 0
    if blank and blank < image.size:
        warnings.warn(f"{source}: its {blank} NaN (blank) pixels take their nearest pixels' values for the network and are NaN again in the result")


def _is_folder(path: Path) -> bool:
    """A folder of files, not a Zarr store (which is a folder too)."""
    from .io import ZARR_SUFFIX

    return path.is_dir() and path.suffix.lower() != ZARR_SUFFIX


def _image_files(paths: list[str]) -> list[Path]:
    """Expand folders into the image files they hold; keep files as given."""
    from .io import IMAGE_SUFFIXES

    files = []
    for text in paths:
        path = Path(text)
        if _is_folder(path):
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise CommandError(f"folder {text!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise CommandError(f"input file {text!r} does not exist")
    return files


def _check_not_input(output: Path, inputs: list[Path]) -> None:
    for path in inputs:
        if output.exists() and path.exists() and os.path.samefile(output, path):
            raise CommandError(f"output {str(output)!r} is the input file {str(path)!r}; choose another path")
        if output.resolve() == path.resolve():
            raise CommandError(f"output {str(output)!r} is the input file {str(path)!r}; choose another path")


def _file_target(path: Path) -> Path:
    """``-o`` of a command that writes one file: a folder there is refused up front."""
    if _is_folder(path):
        raise CommandError(f"-o {str(path)!r} is a folder; give a file name")
    return path


def _writable_folder(path: Path) -> None:
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        raise CommandError(f"output folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise CommandError(f"output folder {str(folder)!r} is not writable")


def _progress(iterable, total: int, description: str):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=description, unit="image", disable=total < 2, file=sys.stderr)


def _progress_line(text: str) -> None:
    """A line on stderr printed above any progress bar instead of through it."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def _synthesize(args) -> None:
    from .io import check_writable, read_image, write_image
    from .synthesis import synthesize_low_light

    source, output = Path(args.input), _file_target(Path(args.output))
    _check_not_input(output, [source])
    _writable_folder(output)
    image = read_image(source)
    check_writable(output, image.dtype, image.shape)
    metadata = _kept_metadata(source)
    low = synthesize_low_light(
        image,
        args.alpha,
        args.gamma,
        noise=None if args.noise == "none" else args.noise,
        noise_sigma=args.sigma,
        photons=args.photons,
        seed=args.seed,
        channel_axis=_resolve_channel_axis(args.channel_axis, image, metadata),
        data_range=_data_range(args, [metadata], str(source)),
    )
    write_image(output, low, metadata=metadata)


def _kept_metadata(source: Path) -> dict:
    """The metadata of ``source`` that its results keep; what they cannot keep is said in a warning."""
    from .io import read_metadata

    metadata = read_metadata(source)
    for what in metadata["not_kept"]:
        warnings.warn(f"{source}: {what} not kept")
    return metadata


def _data_range(args, metadata: list[dict], what: str) -> float | None:
    """``--data-range``, else the full intensity the OME metadata of every file (their
    :func:`~napari_lowlight.io.read_metadata`) gives alike, said on stderr for ``what``; None
    if any gives none or they differ."""
    if args.data_range is not None:
        return args.data_range
    ranges = {each.get("data_range") for each in metadata}
    if len(ranges) != 1 or None in ranges:
        return None
    (data_range,) = ranges
    _progress_line(
        f"napari-lowlight: {what}: full intensity {data_range:g}, as the OME metadata's significant bits say"
        " (--data-range sets another)"
    )
    return data_range


def _load_model_argument(text):
    """The model a --model/--from argument names, on the CPU: restoring and training move a
    copy to their device, and a model shipped to dask workers must unpickle on any of them."""
    from .weights import load_model

    return load_model(text, device="cpu")


def _output_paths(inputs: list[Path], text: str, flag: str, name) -> list[Path]:
    """One path per input: ``output / name(input)`` in a folder ``text`` (an existing one, or one
    written with a trailing separator, made here), else ``text`` itself, which only a single
    input can have."""
    output = Path(text)
    if text.endswith(tuple(filter(None, (os.sep, os.altsep)))) and not _is_folder(output):
        if output.exists():
            raise CommandError(f"{flag} {text!r} names a folder, but a file is there")
        _writable_folder(output)
        output.mkdir()
    if _is_folder(output):
        return [output / name(path) for path in inputs]
    if len(inputs) > 1:
        raise CommandError(
            f"with {len(inputs)} inputs, {flag} must be a folder; {text!r} is not (end it with "
            f"{os.sep!r} to make a new one)"
        )
    return [output]


def _check_distinct(writes: list[tuple[Path, str]]) -> None:
    """Refuse two outputs at one path (same names from two folders, a difference map named
    like a result): the second would silently replace the first."""
    seen = {}
    for path, what in writes:
        key = os.path.normcase(Path(path).resolve())
        if key in seen:
            raise CommandError(f"{seen[key]} and {what} would both be written to {str(path)!r}; choose other folders")
        seen[key] = what


def _restore(args) -> None:
    inputs = _image_files(args.inputs)
    targets = _output_paths(inputs, args.output, "-o", lambda path: path.name)
    differences = [None] * len(inputs)
    if args.difference:
        differences = _output_paths(inputs, args.difference, "--difference", lambda path: f"{path.stem}.tif")
    writes = [(target, f"the result of {str(path)!r}") for path, target in zip(inputs, targets)]
    writes += [(d, f"the difference map of {str(path)!r}") for path, d in zip(inputs, differences) if d is not None]
    _check_distinct(writes)
    for target, _ in writes:
        _check_not_input(target, inputs)
        _writable_folder(target)
    model = _load_model_argument(args.model)
    failed = []
    with _scheduler(args.scheduler):
        for source, target, difference_target in _progress(zip(inputs, targets, differences), len(inputs), "restoring"):
            try:
                _restore_file(source, target, difference_target, model, args)
            except (ValueError, TypeError, OSError) as error:
                if len(inputs) == 1:
                    raise
                # One bad file does not stop a batch: report it, go on, fail at the end.
                _progress_line(f"napari-lowlight: {source}: {error}")
                failed.append(str(source))
    if failed:
        raise CommandError(f"{len(failed)} of {len(inputs)} files could not be restored: {', '.join(failed)}")


def _restore_file(source, target, difference_target, model, args) -> None:
    """Restore one file; Zarr stores and big TIFFs stream through dask, block by block."""
    from .inference import restore
    from .io import check_writable, is_lazy_source, read_image

    lazy = is_lazy_source(source)
    image = read_image(source, lazy=lazy)
    # Both outputs' formats are checked before the network runs: no work lost to them.
    check_writable(target, image.dtype, image.shape, lazy=lazy)
    if difference_target is not None:
        check_writable(difference_target, np.float32, image.shape, lazy=lazy)
    metadata = _kept_metadata(source)
    data_range = _data_range(args, [metadata], str(source))
    _say_blank_pixels(image, source)
    restored, difference = restore(
        image,
        args.alpha,
        model=model,
        channel_axis=_resolve_channel_axis(args.channel_axis, image, metadata),
        device=args.device,
        tile_size=args.tile,
        return_difference=True,
        data_range=data_range,
        compile=args.compile,
        ensemble=args.ensemble,
        keep_black=args.keep_black,
        refine=args.refine,
    )
    _write_result(target, restored, metadata)
    if difference_target is not None:
        _write_result(difference_target, difference, metadata)


def _write_result(path: Path, array, metadata: dict) -> None:
    """A lazy result, or any result bound for a Zarr store, block by block; else one file,
    with the input's ``metadata`` where the format holds it."""
    from .intensity import is_dask
    from .io import ZARR_SUFFIX, write_image, write_lazy

    if is_dask(array) or path.suffix.lower() == ZARR_SUFFIX:
        import dask.array as da

        write_lazy(path, da.asarray(array), metadata=metadata)
    else:
        write_image(path, array, metadata=metadata)


@contextlib.contextmanager
def _scheduler(address):
    """Run dask work on a ``dask.distributed`` cluster at ``address``, or a named local scheduler."""
    if address is None:
        yield
        return
    import dask

    if address in ("threads", "processes", "synchronous"):
        with dask.config.set(scheduler=address):
            yield
        return
    try:
        from distributed import Client
    except ImportError:
        raise CommandError("--scheduler ADDRESS needs the 'distributed' package (pip install distributed)") from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as error:
        raise CommandError(f"cannot reach the dask scheduler at {address!r} ({error})") from None
    with client:
        yield


def _training_options(args, defaults: dict) -> dict:
    """Options of ``train()`` from ``--config`` (a TOML file), overridden by flags, else ``defaults``."""
    options = {}
    if args.config:
        try:
            with open(args.config, "rb") as file:
                options = tomllib.load(file).get("train", {})
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise CommandError(f"config {args.config!r} is not a readable TOML file ({error})") from None
    for name in ("steps", "batch_size", "patch_size", "lr", "seed", "checkpoint", "scenes", "scene_kinds"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    for name, value in defaults.items():
        options.setdefault(name, value)
    for name, limit in (("scenes", math.inf), ("seed", SEED_LIMIT)):  # numpy or torch would refuse them in words that name neither
        value = options.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            wording = ">= 0" if limit == math.inf else f"from 0 to {limit}"
            raise CommandError(f"{name} must be an integer {wording}, got {value!r}")
    from .training import TrainingConfig

    batch, patch = (options.get(name, getattr(TrainingConfig, name)) for name in ("batch_size", "patch_size"))
    if isinstance(batch, int) and isinstance(patch, int) and batch * patch**2 > STEP_PIXELS_LIMIT:
        raise CommandError(f"batch_size {batch} x patch_size {patch}**2 is more pixels per step than {STEP_PIXELS_LIMIT} (8 GiB per float32 tensor)")
    if args.config:
        from .weights import SHIPPED_WEIGHTS

        # Paths in a recipe are relative to the recipe's folder, like its data folders.
        if "checkpoint" in options and args.checkpoint is None:
            options["checkpoint"] = str(Path(args.config).parent / options["checkpoint"])
        start = options.get("from")
        if isinstance(start, str) and start not in ("scratch", *SHIPPED_WEIGHTS):
            options["from"] = str(Path(args.config).parent / start)
    return options


def _device_and_precision(device) -> str:
    """Where and in what ``train()`` computes on ``device``, e.g. ``"cuda, bfloat16"``: a
    user sees whether the GPU is in use."""
    import torch

    from .devices import mixed_precision, resolve_device

    device = resolve_device(device)
    autocast = mixed_precision(device)
    dtype = autocast.fast_dtype if isinstance(autocast, torch.autocast) else torch.float32
    return f"{device.type}, {str(dtype).removeprefix('torch.')}"


def _train(args) -> None:
    from tqdm import tqdm

    from .io import read_image, read_metadata
    from .network import deepened, widened
    from .scenes import generated_scenes
    from .training import FINE_TUNE_LR, SELF_SUPERVISED_DEFAULTS, train
    from .weights import save_model

    output = _file_target(Path(args.output))
    _writable_folder(output)
    # The learning rate depends on the start (below).
    defaults = {name: v for name, v in SELF_SUPERVISED_DEFAULTS.items() if name != "lr"} if args.self_supervised else {"steps": 1000}
    options = _training_options(args, defaults)
    scene_count = options.pop("scenes", 0)
    scene_kinds = options.pop("scene_kinds", None)
    scene_psf_sigma_range = options.pop("scene_psf_sigma_range", None)
    added_blocks = options.pop("add_enhance_blocks", None)
    enhance_width = options.pop("enhance_width", None)
    clean_paths = list(args.clean) + list(options.pop("data", []))
    data_root = Path(args.config).parent if args.config else Path()
    files = _image_files([str(data_root / p) if not Path(p).is_absolute() else p for p in clean_paths]) if clean_paths else []
    pair_files = [Path(p) for p in args.pairs or []]
    if len(pair_files) % 2:
        raise CommandError("--pairs takes LOW HIGH file pairs; an odd number of files was given")
    if pair_files and scene_count:
        raise CommandError("--scenes adds clean images; it cannot be combined with --pairs")
    if scene_kinds is not None and not scene_count:
        raise CommandError("scene_kinds chooses the kinds of generated scenes; give --scenes N too")
    if scene_psf_sigma_range is not None and not scene_count:
        raise CommandError("scene_psf_sigma_range sets the blur of generated scenes; give --scenes N too")
    if args.self_supervised and (pair_files or scene_count):
        raise CommandError("--self-supervised learns from the noisy FRAMES given; it cannot be combined with --pairs or --scenes")
    if args.self_supervised and not files:
        raise CommandError("no noisy frames: give image files or folders to --self-supervised")
    if not files and not pair_files and not scene_count:
        raise CommandError("no training images: give CLEAN files or folders, --scenes N or --pairs LOW HIGH")
    _check_not_input(output, files + pair_files)
    origin = args.start or options.pop("from", None)
    if origin is None and args.self_supervised:
        origin = "default"  # noisy frames teach denoising only: brightening comes from trained weights
    model = None if origin in (None, "scratch") else _load_model_argument(origin)
    seed = options.get("seed", 0)  # the recipe's seed also seeds the added blocks and the scenes
    if added_blocks is not None:
        if model is None:
            raise CommandError("add_enhance_blocks deepens trained weights; give the weights to start from (--from)")
        try:
            model = deepened(model, added_blocks, seed=seed)
        except (TypeError, ValueError) as error:
            raise CommandError(f"add_enhance_blocks must be a list of dilations, got {added_blocks!r} ({error})") from None
    if enhance_width is not None:
        if model is None:
            raise CommandError("enhance_width widens trained weights; give the weights to start from (--from)")
        try:
            model = widened(model, enhance_width, seed=seed)
        except ValueError as error:
            raise CommandError(str(error)) from None
    if model is not None:
        options.setdefault("lr", SELF_SUPERVISED_DEFAULTS["lr"] if args.self_supervised else FINE_TUNE_LR)
    options.pop("from", None)
    images = [read_image(path) for path in files]
    scene_kinds = DEFAULT_SCENE_KINDS if scene_kinds is None else scene_kinds
    # main() reports a bad scene_kinds or scene_psf_sigma_range by the ValueError naming it.
    scenes = generated_scenes(scene_count, seed=seed, kinds=scene_kinds, psf_sigma_range=scene_psf_sigma_range)
    pairs = None
    if pair_files:
        pairs = [(read_image(low), read_image(high)) for low, high in zip(pair_files[::2], pair_files[1::2])]
    metadata = [read_metadata(path) for path in files + pair_files]
    # Grey and colour files can be mixed: each image gets its own channel axis.
    if images:
        channel_sources = zip(images, metadata)
    else:
        channel_sources = zip([low for low, _ in pairs or []], metadata[::2])
    channel_axes = [_resolve_channel_axis(args.channel_axis, image, meta) for image, meta in channel_sources]
    channel_axes += [None] * len(scenes)
    data = dict(noisy=images) if args.self_supervised else dict(images=images, dim_images=scenes, pairs=pairs)
    data_range = _data_range(args, metadata, f"{len(files + pair_files)} files")
    run = train(**data, model=model, device=args.device, channel_axis=channel_axes, data_range=data_range, **options)
    bar = tqdm(total=options["steps"], desc=f"training ({_device_and_precision(args.device)})", unit="step", file=sys.stderr)
    try:
        while True:
            event = next(run)
            bar.update(event.step - bar.n)
            psnr = "" if event.validation_psnr is None else f"{event.validation_psnr:.2f}"
            bar.set_postfix(loss=f"{event.loss:.4g}", val_psnr=psnr, img_s=f"{event.images_per_second:.0f}")
            if args.self_supervised and event.step == event.steps:
                # The core then calibrates the denoise-only refinement on the frames, before it returns.
                bar.set_description("calibrating the refinement")
    except StopIteration as finished:
        trained = finished.value
    finally:
        bar.close()
    # What it learned from, beside how: the data are not part of TrainingConfig.
    # data_range: restoring these data needs it too.
    sources = {
        "paths": clean_paths,
        "files": len(files),
        "scenes": scene_count,
        "scene_kinds": list(scene_kinds) if scene_count else [],
        "scene_psf_sigma_range": scene_psf_sigma_range,
        "add_enhance_blocks": list(added_blocks or []),
        "enhance_width": enhance_width,
        "pairs": len(pairs or []),
        "data_range": data_range,
    }
    save_model(trained, output, training={**trained.training_config, "data": sources})


def _demo(args) -> None:
    from skimage.metrics import peak_signal_noise_ratio

    from .inference import estimate_alpha, restore
    from .io import write_image
    from .samples import load_sample

    sample = load_sample(args.sample)
    headless = args.headless or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32"))
    if not headless:
        from ._demo_viewer import show_demo

        show_demo(sample)
        return
    restored, difference = restore(sample.low, "auto", channel_axis=sample.channel_axis, return_difference=True)
    alpha = estimate_alpha(sample.low, channel_axis=sample.channel_axis)
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    stem = args.sample
    write_image(folder / f"{stem}_low.tif", sample.low)
    write_image(folder / f"{stem}_restored.tif", restored)
    write_image(folder / f"{stem}_difference.tif", difference)
    scale = float(np.iinfo(sample.low.dtype).max)
    if sample.clean is None:
        # A real frame has no reference to score against: say what the restoration did.
        change = f"mean {sample.low.mean() / scale:.3f} -> {restored.mean() / scale:.3f}"
    else:
        write_image(folder / f"{stem}_clean.tif", sample.clean)
        before = peak_signal_noise_ratio(sample.clean / scale, sample.low / scale, data_range=1)
        after = peak_signal_noise_ratio(sample.clean / scale, restored / scale, data_range=1)
        change = f"PSNR low {before:.2f} dB -> restored {after:.2f} dB"
    print(f"{sample.title}: {change} (alpha=auto: {alpha:.2f}); images in {folder}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="napari-lowlight", description="Restore low-light images with a deep residual network.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    channel_help = "axis of RGB(A) channels: a number, 'none', or 'auto' (3 or 4 entries on the last of 3+ axes)"
    range_help = "value of full intensity, e.g. 4095 for 12-bit camera data in uint16 (default: the dtype's range)"

    synth = commands.add_parser("synthesize", help="make a low-light version of a clean image")
    synth.add_argument("input")
    synth.add_argument("-o", "--output", required=True)
    synth.add_argument("--alpha", type=_positive_float, required=True, help="low-light intensity (> 0)")
    synth.add_argument("--gamma", type=_positive_float, required=True, help="illumination exponent (> 0)")
    synth.add_argument("--noise", choices=["gaussian", "poisson-gaussian", "none"], default="gaussian")
    synth.add_argument("--sigma", type=_non_negative_float, default=0.0, help="Gaussian/read noise std in [0, 1] units")
    synth.add_argument("--photons", type=_photons, help="photons at full intensity (poisson-gaussian)")
    synth.add_argument("--seed", type=_seed)
    synth.add_argument("--channel-axis", type=_channel_axis, default="auto", help=channel_help)
    synth.add_argument("--data-range", type=_positive_float, help=range_help)
    synth.set_defaults(run=_synthesize)

    rest = commands.add_parser("restore", help="restore low-light images")
    rest.add_argument("inputs", nargs="+", help="image files or folders")
    rest.add_argument("-o", "--output", required=True, help="output file, or folder (a new one if it ends with a separator, as out/)")
    rest.add_argument(
        "--alpha",
        type=_alpha,
        default="auto",
        help="restoration strength (>= 0; 0: denoise only) or 'auto': estimated for colour photographs, 0 for grey frames (default: auto)",
    )
    rest.add_argument(
        "--model",
        help="weights file (.safetensors), or shipped weights by name: 'default' (if omitted) or 'fluorescence'"
        " (denoising dim fluorescence frames at --alpha 0)",
    )
    rest.add_argument("--difference", help="also write the difference map (float TIFF) here")
    rest.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    rest.add_argument("--tile", type=_positive_int, help="tile size in pixels (default 256)")
    rest.add_argument("--channel-axis", type=_channel_axis, default="auto", help=channel_help)
    rest.add_argument("--data-range", type=_positive_float, help=range_help)
    rest.add_argument(
        "--compile",
        action="store_true",
        help="run the network through torch.compile: faster on many or large images after a one-off compilation",
    )
    rest.add_argument(
        "--ensemble",
        action="store_true",
        help="average the network over the 8 flips and quarter turns of the image: a little less noise, 8x the time",
    )
    rest.add_argument(
        "--lift-blacks",
        dest="keep_black",
        action="store_false",
        help="leave the network's output as it is: above alpha about 1 it restores black regions as grey"
        " (by default they stay black)",
    )
    rest.add_argument(
        "--no-refine",
        dest="refine",
        action="store_false",
        help="leave the network's output as it is; by default it is refined by a Wiener filter under the"
        " image's own noise (grey images at any alpha, colour images when brightened)",
    )
    rest.add_argument(
        "--scheduler",
        help="dask scheduler for .zarr and big TIFF inputs: a dask.distributed address (tcp://host:8786) "
        "or threads/processes/synchronous",
    )
    rest.set_defaults(run=_restore)

    tr = commands.add_parser("train", help="train or fine-tune the network")
    tr.add_argument("clean", nargs="*", help="clean image files or folders (noisy frames with --self-supervised)")
    tr.add_argument("-o", "--output", required=True, help="weights file to write (.safetensors)")
    tr.add_argument(
        "--from",
        dest="start",
        help="'scratch', shipped weights by name ('default', 'fluorescence') or a weights file to fine-tune"
        " (default: scratch; 'default' with --self-supervised)",
    )
    tr.add_argument("--pairs", nargs="+", metavar="FILE", help="LOW HIGH file pairs of real data")
    tr.add_argument(
        "--self-supervised",
        action="store_true",
        help="the files are noisy frames with no clean version: learn to denoise them (alpha 0) from themselves;"
        " every plane of a Z/T stack is a frame (defaults: steps, patch size and learning rate for a few dozen frames)",
    )
    tr.add_argument("--config", help="TOML recipe with a [train] table (see benchmarks/default_model.toml)")
    tr.add_argument("--steps", type=_positive_int)
    tr.add_argument("--batch-size", type=_positive_int)
    tr.add_argument("--patch-size", type=_positive_int)
    tr.add_argument(
        "--lr",
        type=_positive_float,
        help="learning rate (default 1e-3 from scratch, 1e-4 fine-tuning, 3e-4 fine-tuning with --self-supervised)",
    )
    tr.add_argument("--seed", type=_seed)
    tr.add_argument(
        "--scenes",
        type=_non_negative_int,
        help="also train on this many generated microscopy and astronomy scenes (see napari_lowlight.scenes),"
        " dim by nature: a recipe's dim_denoise_fraction sets how many of their samples stay undarkened",
    )
    tr.add_argument(
        "--scene-kinds",
        nargs="+",
        choices=sorted(SCENE_KINDS),
        help="kinds of the generated scenes, taken in turn (default: fluorescence stars)",
    )
    tr.add_argument("--checkpoint", help="resumable checkpoint file, written as training goes")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--channel-axis", type=_channel_axis, default="auto", help=channel_help)
    tr.add_argument("--data-range", type=_positive_float, help=range_help)
    tr.set_defaults(run=_train)

    demo = commands.add_parser("demo", help="restore a sample image with the shipped weights")
    demo.add_argument("--headless", action="store_true", help="write images instead of opening napari")
    demo.add_argument("--sample", default="hubble", choices=list(SAMPLES), help="default: a real dark sky frame")
    demo.add_argument("-o", "--output", default="napari-lowlight-demo", help="folder for --headless output")
    demo.set_defaults(run=_demo)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line that names the tool (the default names the console script's code line)."""
    kind = "warning" if category is UserWarning else category.__name__
    _progress_line(f"napari-lowlight: {kind}: {message}")


def main(argv=None) -> int:
    """Entry point of the ``napari-lowlight`` console script."""
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if getattr(args, "channel_axis", None) == "none":
                # Planes were asked for: the library's hint about colour-like images is no news.
                from .planes import ChannelAxisWarning

                warnings.simplefilter("ignore", ChannelAxisWarning)
            args.run(args)
    except KeyboardInterrupt:
        print("napari-lowlight: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, TypeError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"napari-lowlight: error: {message}", file=sys.stderr)
        return EXIT_FAILURE
    except MemoryError:
        # Sizes that pass every check can still ask for more than the machine has.
        print("napari-lowlight: error: out of memory; try smaller sizes (--tile, --batch-size, --patch-size)", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
