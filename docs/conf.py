"""Sphinx configuration of the dipsearch documentation: Markdown pages (MyST), autodoc, a gallery of examples."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The checkout's package first, so that the pages document this tree whatever is installed.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
# The gallery fits small networks on the CPU: one thread keeps its timings steady on a shared machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

project = "dipsearch"
author = "dipsearch contributors"
copyright = "dipsearch contributors"
release = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "plain_docstrings",
    "command_help",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "extending/examples", "auto_examples/*.ipynb", "auto_examples/*.py"]

autodoc_member_order = "bysource"
# An inherited docstring (concurrent.futures.Executor.submit) describes the parent, not this class.
autodoc_inherit_docstrings = False
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "show_memory": False,
}

html_theme = "furo"
html_title = "dipsearch"
