"""Shared pieces of the GA tests: a tiny search space and a 32 px problem that fit in a fraction of a second."""

from pathlib import Path

TINY_SPACE = """
name = "tiny"

[genes.depth]
kind = "int"
low = 1
high = 3
default = 2

[genes.lr]
kind = "float"
low = 0.002
high = 0.05
log = true
default = 0.01

[levels.n_down]
kind = "int"
low = 4
high = 16
log = true
default = 8

[levels.n_up]
kind = "choice"
choices = [4, 8, 16]
default = 8

[levels.n_skip]
kind = "choice"
choices = [0, 2, 4]
default = 4

[levels.upsample]
kind = "choice"
choices = ["nearest", "bilinear"]
default = "bilinear"
"""


def write_space(folder: Path, text: str = TINY_SPACE, name: str = "tiny.toml") -> Path:
    path = Path(folder) / name
    path.write_text(text)
    return path


def deep_space(low: int, high: int) -> str:
    """The tiny space with another depth range (deep ones cannot fit a 32 px image: their fits fail)."""
    return TINY_SPACE.replace("low = 1\nhigh = 3\ndefault = 2", f"low = {low}\nhigh = {high}\ndefault = {low}")
