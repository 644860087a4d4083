"""Big-file benchmark (docs/benchmarks.md, "Big files"): peak memory and speed of the CLI on huge TIFFs.

Run from the repository root, on an otherwise idle machine::

    python -m benchmarks.bench_big_files                    # 12000² and 40000², writes docs/benchmarks.md
    python -m benchmarks.bench_big_files --sizes 12000      # the 12000² slide only
    python -m benchmarks.bench_big_files --quick            # smoke run on 1536², prints only

Each input is a square uint16 zlib-compressed tiled TIFF of a dim, noisy scene, made tile by
tile (so making it needs little memory). ``napari-lowlight restore`` runs on it in a fresh
process, which reports its peak resident memory (VmHWM) and the time of the whole command
(model loading, reading, restoring, writing). A file of more than ``LAZY_FILE_BYTES`` of
pixels streams block by block; the in-memory path is the same command with that threshold
lifted, run up to ``--in-memory-up-to`` (it needs about 14 bytes per input byte).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import tifffile

from . import _report

__all__ = ["make_slide", "restore_in_fresh_process", "run", "report", "main"]

SECTION = "big-files"
#: Side of the input's TIFF tiles.
INPUT_TILE = 512
#: Side of the slide of a --quick smoke run.
QUICK_SIDE = 1536

_CLI_PROBE = textwrap.dedent(
    """
    import json, sys, time
    import napari_lowlight.io as io
    from napari_lowlight.cli import main
    if sys.argv[1] != "default":
        io.LAZY_FILE_BYTES = float(sys.argv[1])
    start = time.perf_counter()
    code = main(sys.argv[2:])
    seconds = time.perf_counter() - start
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"code": code, "seconds": seconds, "peak_kib": peak}))
    """
)


def make_slide(path, side, *, seed=0):
    """Write a side x side uint16 zlib TIFF of a dim scene with shot noise, one tile at a time.

    Returns
    -------
    Path
    """
    rng = np.random.default_rng(seed)

    def tiles():
        for top in range(0, side, INPUT_TILE):
            for left in range(0, side, INPUT_TILE):
                y, x = np.mgrid[top : top + INPUT_TILE, left : left + INPUT_TILE].astype(np.float32)
                scene = 0.5 + 0.4 * np.sin(x / 97.0) * np.cos(y / 131.0) + 0.1 * np.sin((x + y) / 13.0)
                # About 1/20 of full scale at the brightest: a low-light frame.
                yield rng.poisson(scene * 3000.0).astype(np.uint16)

    tifffile.imwrite(path, tiles(), shape=(side, side), dtype=np.uint16, tile=(INPUT_TILE, INPUT_TILE), compression="zlib")
    return Path(path)


def restore_in_fresh_process(source, output, *, lazy_file_bytes=None):
    """Run ``napari-lowlight restore source -o output`` in a new Python process.

    ``lazy_file_bytes`` replaces ``napari_lowlight.io.LAZY_FILE_BYTES`` there (``inf``:
    always in memory).

    Returns
    -------
    dict
        ``seconds`` of the whole command, ``peak_kib`` (VmHWM) of the process.
    """
    threshold = "default" if lazy_file_bytes is None else repr(float(lazy_file_bytes))
    completed = subprocess.run(
        [sys.executable, "-c", _CLI_PROBE, threshold, "restore", str(source), "-o", str(output)], capture_output=True, text=True
    )
    if completed.returncode != 0:
        raise RuntimeError(f"restore failed: {completed.stderr.strip()[-2000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise RuntimeError(f"restore exited with {result['code']}: {completed.stderr.strip()[-2000:]}")
    return result


def run(sizes, in_memory_up_to, folder, *, lazy_file_bytes=None):
    """Measure every size, streamed and (up to ``in_memory_up_to``) in memory.

    Returns
    -------
    list of dict
        One row per run: side, path, file and pixel sizes (MB), peak (GB), seconds, MPix/s.
    """
    rows = []
    for side in sizes:
        source = make_slide(Path(folder) / f"slide{side}.tif", side)
        paths = [("streamed", lazy_file_bytes)] + ([("in memory", float("inf"))] if side <= in_memory_up_to else [])
        for name, threshold in paths:
            output = Path(folder) / f"restored{side}.tif"
            result = restore_in_fresh_process(source, output, lazy_file_bytes=threshold)
            with tifffile.TiffFile(output) as written:
                assert written.series[0].shape == (side, side) and written.series[0].dtype == np.uint16
            rows.append(
                {
                    "side": side,
                    "path": name,
                    "file_mb": source.stat().st_size / 1e6,
                    "pixels_mb": side * side * 2 / 1e6,
                    "peak_gb": result["peak_kib"] * 1024 / 1e9,
                    "seconds": result["seconds"],
                    "mpix_per_s": side * side / result["seconds"] / 1e6,
                }
            )
            output.unlink()
            print(json.dumps(rows[-1]), file=sys.stderr)
        source.unlink()
    return rows


def report(rows, *, command, quick, lazy_file_bytes=None):
    """The docs section of ``rows`` (from :func:`run`), as markdown."""
    from napari_lowlight.io import LAZY_FILE_BYTES
    from napari_lowlight.weights import default_model

    threshold = LAZY_FILE_BYTES if lazy_file_bytes is None else lazy_file_bytes
    lines = _report.section_header(
        "Big files",
        command=command,
        machine=_report.machine_description(),
        model_text=_report.describe_model(default_model()),
        quick=quick,
        images_word="a small slide",
    )
    lines += [
        "`napari-lowlight restore slide.tif -o restored.tif` in a fresh process, on square uint16 zlib-compressed "
        f"tiled TIFFs of a dim scene with shot noise. A TIFF of more than {threshold / 2**20:.0f} MiB of pixels "
        "streams: read through tifffile's Zarr view, restored block by block with dask (default threaded "
        "scheduler), written tile by tile. \"in memory\" is the same command with that threshold lifted. Peak "
        "memory is the process's VmHWM; time is the whole command (model loading, reading, restoring, writing). "
        "Targets: peak memory at most 2 GB; streamed MPix/s at least 1/1.2 of the in-memory path's.",
        "",
    ]
    in_memory = {row["side"]: row["mpix_per_s"] for row in rows if row["path"] == "in memory"}
    reference = max(in_memory.items())[1] if in_memory else None
    table = []
    for row in rows:
        ratio = in_memory.get(row["side"], reference)
        table.append(
            [
                f"{row['side']}×{row['side']}",
                row["path"],
                f"{row['pixels_mb']:.0f} / {row['file_mb']:.0f}",
                f"{row['peak_gb']:.2f}",
                f"{row['seconds']:.0f}",
                f"{row['mpix_per_s']:.3f}",
                "—" if ratio is None or row["path"] == "in memory" else f"{ratio / row['mpix_per_s']:.2f}",
            ]
        )
    header = ["image", "path", "pixels / file, MB", "peak RSS, GB", "time, s", "MPix/s", "in-memory MPix/s ÷ streamed"]
    lines.append(_report.markdown_table(header, table))
    skipped = [side for side in {row["side"] for row in rows} if side not in in_memory]
    if skipped:
        lines += ["", f"No in-memory run for {', '.join(f'{s}²' for s in sorted(skipped))}: its ratio is against the largest in-memory run."]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_big_files", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[12000, 40000], help="image sides (default 12000 40000)")
    parser.add_argument("--in-memory-up-to", type=int, default=12000, help="largest side also run in memory (default 12000)")
    parser.add_argument("--quick", action="store_true", help="a 1536² slide, streamed with the threshold lowered to 1 MiB")
    parser.add_argument("--folder", type=Path, default=None, help="where the slides are made (default: a temporary folder)")
    _report.add_output_options(parser)
    args = parser.parse_args(argv)
    sizes, threshold = ([QUICK_SIDE], 2**20) if args.quick else (args.sizes, None)
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        rows = run(sizes, args.in_memory_up_to, folder, lazy_file_bytes=threshold)
    command = _report.command_line("benchmarks.bench_big_files")
    _report.publish(args, SECTION, report(rows, command=command, quick=args.quick, lazy_file_bytes=threshold), rows)


if __name__ == "__main__":
    main()
