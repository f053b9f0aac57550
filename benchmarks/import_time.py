"""Start-up cost of ``import monai_xattn`` and of the ``monai-xattn`` command line.

Run: ``python benchmarks/import_time.py [--repeat 7]``.

Each command runs in a fresh interpreter ``--repeat`` times; the median wall time counts. The references run in the
same way in the same run: a bare interpreter (``python -c pass``), ``import torch`` and ``import monai``. For each
command the heavy packages it imported are listed (torch, monai, transformers, gensim, itk, ignite, pydicom): the
top-level import and ``--help`` must load none of them, so a user pays for torch only in a command that needs it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "monai", "transformers", "gensim", "itk", "ignite", "pydicom", "skimage", "pandas")

#: label -> the Python code a fresh interpreter runs
COMMANDS: dict[str, str] = {
    "python -c pass": "pass",
    "import torch": "import torch",
    "import monai": "import monai",
    "import monai_xattn": "import monai_xattn",
    "monai-xattn --help": "from monai_xattn.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "monai-xattn bundles": "from monai_xattn.cli import main\nmain(['bundles'])",
    "monai-xattn phantom --help": (
        "from monai_xattn.cli import main\ntry:\n    main(['phantom', '--help'])\nexcept SystemExit:\n    pass"
    ),
}

REPORT = "\nimport sys, json\nprint('\\nLOADED', json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(%r))))"


def measure(code: str, repeat: int) -> tuple[float, list[str]]:
    """Median wall seconds of ``python -c code`` over ``repeat`` fresh interpreters; the heavy packages it loaded."""
    times, loaded = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code + REPORT % (HEAVY,)], capture_output=True, text=True, check=True
        )
        times.append(time.perf_counter() - start)
        loaded = json.loads(done.stdout.rsplit("LOADED", 1)[1])
    return statistics.median(times), loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="fresh interpreters per command (median counts)")
    args = parser.parse_args()
    results = {label: measure(code, args.repeat) for label, code in COMMANDS.items()}
    bare = results["python -c pass"][0]
    torch_s = results["import torch"][0]
    print(f"{'command':<28} {'median ms':>10} {'- bare python':>14} {'/ import torch':>15}  heavy packages loaded")
    for label, (seconds, loaded) in results.items():
        print(
            f"{label:<28} {seconds * 1e3:>10.0f} {(seconds - bare) * 1e3:>14.0f} {seconds / torch_s:>15.2f}  "
            f"{', '.join(loaded) or '-'}"
        )


if __name__ == "__main__":
    main()
