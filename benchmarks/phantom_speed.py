"""Speed of the phantom generator: studies/s and images/s for ``--layout all`` at 256 and 1024 px.

Run: ``python benchmarks/phantom_speed.py [--n 125] [--n-large 4] [--workers 2] [--sheet sheet.png]``.

For each size the whole ``generate(layout="all")`` (rendering, reports, every layout's files and tables) runs
twice into a temporary folder: once in this process (``workers=1``, the reference) and once with ``--workers``
processes; the script prints wall seconds and images/s of both, the reference's CPU seconds (what an idle core
would take), the ratio parallel/reference (> 1 = faster) and the peak resident memory (this process and, separately, the largest worker). ``--n`` studies per layout: the
default 125 x 8 layouts = 1,000 studies (target: under 60 s on 2 cores at 256 px).
``--sheet PATH`` also writes a contact sheet of 16 'medium' ChestX-ray8-layout images with their boxes.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from monai_xattn.data.phantom import generate
from monai_xattn.visualize.contact_sheet import contact_sheet


def timed(n: int, size: int, workers: int) -> tuple[float, float, dict]:
    """``(wall seconds, CPU seconds of this process, summary)``; the CPU time of the in-process reference leaves
    out the waiting that a busy machine adds."""
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        summary = generate(Path(tmp) / "phantom", layout="all", n=n, size=size, seed=0, workers=workers)
        return time.perf_counter() - start, time.process_time() - cpu, summary


def sheet(path: Path, n: int = 16, size: int = 256) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "p"
        generate(root, layout="chestxray8", n=n, size=size, seed=1, workers=2)
        records = [json.loads(p.read_text()) for p in sorted((root / "ground_truth").glob("*.json"))][:n]
        # MONAI frame: (W, H) = transpose of the (rows, cols) file; boxes are already xyxy with x = column
        images = [np.asarray(Image.open(root / r["image"]).convert("L")).T for r in records]  # a few NIH PNGs are RGBA
        boxes = [np.array([f["box"] for f in r["findings"]]).reshape(-1, 4) for r in records]
        labels = [[f["type"] if f["type"] != "device" else f["device"] for f in r["findings"]] for r in records]
        Image.fromarray(contact_sheet(images, boxes, labels, ncols=4)).save(path)
        print(f"contact sheet: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=125, help="studies per layout at 256 px")
    parser.add_argument("--n-large", type=int, default=4, help="studies per layout at 1024 px")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sheet", type=Path, default=None)
    args = parser.parse_args()
    print(
        f"{'size':>5} {'studies':>8} {'images':>7} {'ref s':>7} {'ref cpu s':>9} {'par s':>7} {'ref img/s':>9} "
        f"{'par img/s':>9} {'ratio':>6}"
    )
    for size, n in ((256, args.n), (1024, args.n_large)):
        t_ref, cpu_ref, summary = timed(n, size, 1)
        t_par, _, _ = timed(n, size, args.workers)
        studies = sum(v["studies"] for v in summary["layouts"].values())
        images = sum(v["images"] for v in summary["layouts"].values())
        print(
            f"{size:>5} {studies:>8} {images:>7} {t_ref:>7.1f} {cpu_ref:>9.1f} {t_par:>7.1f} {images / t_ref:>9.1f} "
            f"{images / t_par:>9.1f} {t_ref / t_par:>6.2f}"
        )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: this process {own:.0f} MiB, largest worker {workers:.0f} MiB")
    if args.sheet:
        sheet(args.sheet)


if __name__ == "__main__":
    main()
