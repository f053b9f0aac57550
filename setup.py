"""Build hook: the wheel carries the top-level ``bundles/`` as ``monai_xattn/bundles`` (package data).

The bundles stay at the repository's top level, where MONAI users expect them and run them in place; a wheel has no
top level, so ``build_py`` copies what each bundle ships into the built package with the same function as
``monai-xattn bundles --copy-to``, and ``monai_xattn.bundles_cli.bundle_root`` finds them there through
``importlib.resources``. Everything else is declared in ``setup.cfg``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the build backend does not promise the project on sys.path; bundles_cli is stdlib-only

from monai_xattn.bundles_cli import copy_bundles  # noqa: E402


class BuildPyWithBundles(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "monai_xattn" / "bundles"
        shutil.rmtree(target, ignore_errors=True)
        copy_bundles(target, root=HERE / "bundles")


setup(cmdclass={"build_py": BuildPyWithBundles})
