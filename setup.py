"""Build step that ships the named search spaces inside the package.

search_spaces/*.toml at the top of the checkout is the one copy that is edited (and where new spaces are
added); a wheel built from it (`pip install .`) gets the files as dipsearch/spaces/*.toml, so `--space demo`
also works where there is no checkout. Editable installs need no copy: they read the checkout's folder.
Everything else about the package is declared in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithSpaces(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "dipsearch" / "spaces"
        self.mkpath(str(target))
        for source in sorted((ROOT / "search_spaces").glob("*.toml")):
            self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildWithSpaces})
