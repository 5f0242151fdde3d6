"""The documentation's own tools: docstrings shown as written, and each command's --help taken from its parser."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "_ext"))

from command_help import help_text  # noqa: E402
from plain_docstrings import plain_lines  # noqa: E402

DOCSTRING = """The engine: `fit()` on top of it, with *args and **kwargs passed on.

    Engine(spec, config).run(problem) -> FitResult

Seams:
  network    factory out_channels -> nn.Module
  weights    initial weights | a file
- a list item
  continued
A name_ and |x| and [1]_ stay text; `a`s and x`b` too.
"""


def test_docstrings_become_restructuredtext_without_warnings():
    docutils_core = pytest.importorskip("docutils.core")
    source = "\n".join(plain_lines(DOCSTRING.splitlines()))
    doctree = docutils_core.publish_doctree(source, settings_overrides={"report_level": 5})
    messages = [node.astext() for node in doctree.findall() if node.tagname == "system_message"]
    assert messages == []
    text = doctree.astext()
    assert "Engine(spec, config).run(problem) -> FitResult" in text  # an indented line keeps its layout
    assert "with *args and **kwargs passed on" in text
    assert "A name_ and |x| and [1]_ stay text" in text


def test_command_help_comes_from_the_parser():
    text = help_text(["search", "ga"])
    assert text.startswith("usage: dipsearch search ga")
    assert "--pop N" in text and "--final-margin Z" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    with pytest.raises(ValueError, match="dipsearch has no command 'search nope'"):
        help_text(["search", "nope"])
