"""What both benchmark scripts share: the docs page, its marked sections, the machine line."""

import argparse
import json
import os
import platform
import re
import shlex
import sys
import tomllib
from datetime import date
from pathlib import Path

__all__ = ["DOCS_PATH", "write_section", "markdown_table", "machine_description", "describe_model", "command_line"]

ROOT = Path(__file__).resolve().parent.parent
DOCS_PATH = ROOT / "docs" / "benchmarks.md"
#: The shipped weights' training recipe.
RECIPE = ROOT / "benchmarks" / "default_model.toml"

_NEW_PAGE = """# Benchmarks

Every table below is written by a script in `benchmarks/`; the command that produced it, the machine
and the model are printed beside it, and each section states its protocol. Edit the text outside the
`<!-- name:start -->` / `<!-- name:end -->` markers freely: the scripts only replace what is inside.
"""


def write_section(name, body, path=DOCS_PATH):
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->``.

    The rest of the page is left intact. A missing page is created; a missing
    section is appended at the end.

    Parameters
    ----------
    name : str
        Section name, e.g. ``"quality"``.
    body : str
        Markdown to put between the markers.
    path : str or Path, optional
        The markdown page.

    Returns
    -------
    path : Path
    """
    path = Path(path)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else _NEW_PAGE
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), flags=re.DOTALL)
    if pattern.search(text):
        # A function as replacement: backslashes in the body are not group references.
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def quality_parser(module, doc, *, quick_help):
    """The command line of a quality benchmark: ``--quick``, ``--seed``, ``--device`` and the outputs.

    Parameters
    ----------
    module : str
        The script's module, e.g. ``"benchmarks.bench_quality"`` (run with ``python -m``).
    doc : str
        The script's docstring; its first line describes the command.
    quick_help : str
        What ``--quick`` runs instead.

    Returns
    -------
    argparse.ArgumentParser
        Script-specific options can still be added.
    """
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    add_output_options(parser)
    return parser


def recipe_options(recipe=RECIPE) -> dict:
    """The ``[train]`` table of a training recipe (paths in it are relative to its folder)."""
    with open(recipe, "rb") as file:
        return tomllib.load(file)["train"]


def add_model_option(parser):
    """The ``--model`` option of a benchmark that scores one model."""
    parser.add_argument("--model", type=Path, default=None, help="a .safetensors file (default: the shipped model)")


def add_output_options(parser):
    """The ``--json`` and ``--write`` options every benchmark script takes."""
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/benchmarks.md (default: yes, except with --quick)",
    )


def publish(args, name, report, raw):
    """Print ``report``; write ``raw`` to ``--json`` and the report into section ``name``."""
    print(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(raw, indent=1))
    if args.write if args.write is not None else not args.quick:
        print(f"written to {write_section(name, report)}", file=sys.stderr)


def section_header(title, *, command, machine, model_text, quick, images_word="images"):
    """The lines every benchmark section starts with: what ran, where, on which model."""
    lines = [f"## {title}", "", f"Command: `{command}`", "", f"Machine: {machine}", "", f"Model: {model_text}.", ""]
    if quick:
        lines += [f"**Quick smoke run on {images_word}: not comparable with published numbers.**", ""]
    return lines


def markdown_table(header, rows):
    """A GitHub markdown table; the first column is left-aligned, the others right-aligned.

    Parameters
    ----------
    header : sequence of str
    rows : sequence of sequence
        Cells are converted with ``str``.

    Returns
    -------
    str
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def machine_description():
    """One line naming the machine and the software versions that the numbers depend on."""
    import numpy
    import torch

    import napari_lowlight

    parts = [
        f"{_cpu_name()}, {os.cpu_count()} logical cores, {_memory_gib():.0f} GiB RAM",
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s)",
    ]
    if torch.cuda.is_available():
        parts.append(f"CUDA {torch.version.cuda} on {torch.cuda.get_device_name(0)}")
    parts += [
        f"numpy {numpy.__version__}",
        f"Python {platform.python_version()}",
        f"{platform.system()} {platform.release()}",
        f"napari-lowlight {napari_lowlight.__version__}",
    ]
    try:
        # Load while the run started: the numbers are only comparable on an idle machine.
        parts.append("load average %.1f at start" % os.getloadavg()[0])
    except OSError:
        pass
    parts.append(date.today().isoformat())
    return "; ".join(parts)


def command_line(module):
    """The command that reruns this script with the arguments it was given.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"benchmarks.bench_quality"``.

    ``--json PATH`` is left out: it only saves the raw results somewhere, often a scratch
    folder no reader has, and changes no number.
    """
    arguments, skip = [], False
    for arg in sys.argv[1:]:
        if not skip and not arg.startswith("--json"):
            arguments.append(shlex.quote(arg))
        skip = arg == "--json"
    return " ".join(["python", "-m", module, *arguments])


def describe_model(model, path=None, *, label=None):
    """One line naming the weights, their architecture, size and training length.

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`napari_lowlight.load_model`.
    path : str or Path, optional
        The weights file it came from; None for the shipped default.
    label : str, optional
        The weights' name instead of the path (shipped weights other than the default).
    """
    config = getattr(model, "config", None)
    config = config.to_dict() if hasattr(config, "to_dict") else config
    parameters = sum(p.numel() for p in model.parameters())
    training = getattr(model, "training_config", None) or {}
    source = label or ("the shipped default weights" if path is None else f"`{path}`")
    text = f"{source}: {config}, {parameters:,} parameters, receptive radius {model.receptive_radius} px"
    if "steps_done" in training:
        # A checkpoint of an unfinished run: say how far it got.
        text += f", trained {training['steps_done']} of {training.get('steps', '?')} steps"
    elif "steps" in training:
        text += f", trained {training['steps']} steps"
    return text
