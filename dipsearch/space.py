"""Search spaces: genes declared in TOML, genomes (gene name -> value), and decoding to an ArchSpec.

A space file has four tables (see search_spaces/default.toml):
  [genes.NAME]   global genes: depth, input_depth, downsample, activation, pad, need1x1_up, k_skip,
                 upsample (all levels alike) and the fit settings lr, reg_noise_std, iters, and the variant
                 genes variant (plain | sgld) and tv (DIP-TV weight; see dipsearch.variants);
  [levels.NAME]  per-level genes n_down, n_up, n_skip, k_down, k_up, k_skip, upsample, declared once and
                 expanded to one gene per level up to the largest depth ("n_down[3]");
  [fixed]        values that are not searched;
  [ties]         a per-level gene that copies another, e.g. n_up = "n_down" for symmetric hourglasses.
Each gene has a kind: int (low, high, optional log/step), float (low, high, optional log), choice
(choices) with a default inside its range. Levels at or beyond the genome's depth are ignored.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arch import ArchSpec
from .errors import DipsearchError
from .tomlio import load_toml

Genome = dict[str, Any]

ARCH_GLOBALS = ("depth", "input_depth", "input_kind", "downsample", "activation", "pad", "need1x1_up")
PER_LEVEL = ("n_down", "n_up", "n_skip", "k_down", "k_up", "k_skip", "upsample")
FIT_GENES = ("lr", "reg_noise_std", "iters", "variant", "tv")
GLOBAL_GENES = ARCH_GLOBALS + FIT_GENES + ("k_skip", "upsample")
KINDS = ("int", "float", "choice")


@dataclass(frozen=True)
class Gene:
    name: str
    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    log: bool = False
    step: int = 1
    level: int | None = None  # per-level genes only

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return rng.choice(self.choices)
        if self.kind == "int":
            if self.log:
                value = round(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
            else:
                value = rng.randint(int(self.low), int(self.high))
            return self.snap(value)
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)

    def snap(self, value: float) -> Any:
        """The nearest legal value: clipped to the bounds and, for ints, on the step grid."""
        if self.kind == "choice":
            return value
        value = min(max(value, self.low), self.high)
        if self.kind == "int":
            steps = round((value - self.low) / self.step)
            return int(min(self.low + steps * self.step, self.high))
        return float(value)

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and (int(value) != value or (value - self.low) % self.step):
            return False
        return self.low <= value <= self.high


@dataclass
class SearchSpace:
    name: str
    genes: dict[str, Gene]
    fixed: dict[str, Any] = field(default_factory=dict)
    ties: dict[str, str] = field(default_factory=dict)
    source: str = "<space>"

    @property
    def max_depth(self) -> int:
        if "depth" in self.genes:
            gene = self.genes["depth"]
            return int(max(gene.choices) if gene.kind == "choice" else gene.high)
        return int(self.fixed.get("depth", 5))

    def default(self) -> Genome:
        return {name: gene.default for name, gene in self.genes.items()}

    def sample(self, rng: random.Random | int) -> Genome:
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        return {name: gene.sample(rng) for name, gene in self.genes.items()}

    def depth_of(self, genome: Genome) -> int:
        return int(genome.get("depth", self.fixed.get("depth", 5)))

    def active(self, genome: Genome) -> list[str]:
        """Genes that matter for this genome: per-level genes below its depth and all global genes."""
        depth = self.depth_of(genome)
        return [n for n, g in self.genes.items() if g.level is None or g.level < depth]

    def validate(self, genome: Genome) -> None:
        missing = [n for n in self.genes if n not in genome]
        unknown = [n for n in genome if n not in self.genes]
        if missing or unknown:
            raise DipsearchError(
                f"genome does not fit space {self.name!r}: missing {missing or 'none'}, unknown {unknown or 'none'}"
            )
        for name, gene in self.genes.items():
            if not gene.contains(genome[name]):
                raise DipsearchError(f"genome value {genome[name]!r} for gene {name!r} is outside its range")

    def _value(self, genome: Genome, name: str) -> Any:
        if name in genome:
            return genome[name]
        return self.fixed.get(name, getattr(_SEED, name, None))

    def _levels(self, genome: Genome, name: str, depth: int) -> list:
        name = self.ties.get(name, name)
        if f"{name}[0]" in self.genes:
            return [genome[f"{name}[{i}]"] for i in range(depth)]
        value = self._value(genome, name)
        if isinstance(value, (list, tuple)):
            if len(value) < depth:
                raise DipsearchError(f"{self.source}: fixed {name} has {len(value)} levels, depth is {depth}")
            return list(value[:depth])
        return [value] * depth

    def decode(self, genome: Genome) -> ArchSpec:
        depth = self.depth_of(genome)
        arch = {name: self._levels(genome, name, depth) for name in PER_LEVEL}
        for name in ARCH_GLOBALS[1:]:
            arch[name] = self._value(genome, name)
        return ArchSpec.from_dict(arch, source=f"{self.source}: decoded genome")

    def fit_settings(self, genome: Genome) -> dict[str, Any]:
        """The fit-setting genes (lr, reg_noise_std, iters, variant, tv) that this space searches or fixes."""
        out = {}
        for name in FIT_GENES:
            if name in genome:
                out[name] = genome[name]
            elif name in self.fixed:
                out[name] = self.fixed[name]
        return out


_SEED = ArchSpec()


# --------------------------------------------------------------------------- loading


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space TOML file."""
    path = Path(path)
    data = load_toml(path, what="search-space file")
    return space_from_dict(data, source=str(path))


def space_from_dict(data: dict[str, Any], source: str = "<space>") -> SearchSpace:
    allowed_top = {"name", "description", "genes", "levels", "fixed", "ties"}
    extra = sorted(set(data) - allowed_top)
    if extra:
        raise DipsearchError(f"{source}: unknown table or key(s) {', '.join(extra)}; allowed: {sorted(allowed_top)}")
    fixed = dict(data.get("fixed", {}))
    ties = dict(data.get("ties", {}))
    for name in fixed:
        if name not in GLOBAL_GENES + PER_LEVEL:
            raise DipsearchError(f"{source}: [fixed] {name!r} is not a known setting; known: {_known()}")
    genes: dict[str, Gene] = {}
    for name, spec in data.get("genes", {}).items():
        if name not in GLOBAL_GENES:
            raise DipsearchError(f"{source}: gene {name!r} is not a known global gene; known: {', '.join(GLOBAL_GENES)}")
        genes[name] = _gene(name, spec, source)
    if "depth" in genes:
        depth_gene = genes["depth"]
        lowest = min(depth_gene.choices) if depth_gene.kind == "choice" else depth_gene.low
        if lowest < 1:
            raise DipsearchError(f"{source}: gene 'depth' must be at least 1")
    max_depth = SearchSpace("", genes, fixed).max_depth
    for name, spec in data.get("levels", {}).items():
        if name not in PER_LEVEL:
            raise DipsearchError(f"{source}: per-level gene {name!r} is not known; known: {', '.join(PER_LEVEL)}")
        if name in genes:
            raise DipsearchError(f"{source}: {name!r} is declared both as a global gene and per level; keep one")
        defaults = spec.get("default") if isinstance(spec, dict) else None
        if isinstance(defaults, list) and len(defaults) < max_depth:
            raise DipsearchError(
                f"{source}: [levels.{name}] default has {len(defaults)} entries but depth goes up to {max_depth}; "
                "give one default per level (or a single value for all levels)"
            )
        for level in range(max_depth):
            level_spec = dict(spec)
            if isinstance(defaults, list):
                level_spec["default"] = defaults[level]
            genes[f"{name}[{level}]"] = _gene(f"{name}[{level}]", level_spec, source, level)
    for name, target in ties.items():
        if name not in PER_LEVEL or target not in PER_LEVEL:
            raise DipsearchError(f"{source}: [ties] {name} = {target!r}: both must be per-level genes ({', '.join(PER_LEVEL)})")
        if f"{name}[0]" in genes or name in genes:
            raise DipsearchError(f"{source}: [ties] {name!r} is tied to {target!r} but also declared as a gene")
    from .variants import check_variant_genes  # the variants import the engine, which needs this module's peers

    check_variant_genes(genes, fixed, source)
    space = SearchSpace(str(data.get("name", Path(source).stem)), genes, fixed, ties, source)
    for name in PER_LEVEL:
        _check_levels(space, name)
    space.decode(space.default())  # a default that cannot build is a file error, reported now
    return space


def _check_levels(space: SearchSpace, name: str) -> None:
    """A per-level setting that is not searched must cover every depth the space can sample."""
    source = space.ties.get(name, name)
    if f"{source}[0]" in space.genes or source in space.genes:
        return
    value = space.fixed.get(source, getattr(_SEED, source))
    if isinstance(value, (list, tuple)) and len(value) < space.max_depth:
        origin = "[fixed]" if source in space.fixed else "the seed default"
        raise DipsearchError(
            f"{space.source}: depth goes up to {space.max_depth} but {name} ({origin}: {list(value)}) has only "
            f"{len(value)} levels; declare [levels.{source}] or give {source} for every level in [fixed]"
        )


def _known() -> str:
    return ", ".join(GLOBAL_GENES + PER_LEVEL)


def _gene(name: str, spec: Any, source: str, level: int | None = None) -> Gene:
    where = f"{source}: gene {name!r}"
    if not isinstance(spec, dict):
        raise DipsearchError(f"{where}: expected a table with kind, bounds or choices, and default")
    allowed = {"kind", "low", "high", "choices", "log", "step", "default"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise DipsearchError(f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise DipsearchError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if "default" not in spec:
        raise DipsearchError(f"{where}: no default given")
    default = spec["default"]
    if kind == "choice":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise DipsearchError(f"{where}: a choice gene needs a non-empty list 'choices'")
        gene = Gene(name, kind, default, choices=tuple(choices), level=level)
        if default not in gene.choices:
            raise DipsearchError(f"{where}: default {default!r} is not among the choices {choices}")
        return gene
    low, high = spec.get("low"), spec.get("high")
    numbers = (int, float) if kind == "float" else (int,)
    for label, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, numbers):
            raise DipsearchError(f"{where}: '{label}' must be {'a number' if kind == 'float' else 'an integer'}, got {value!r}")
    if low >= high:
        raise DipsearchError(f"{where}: low ({low}) must be below high ({high})")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise DipsearchError(f"{where}: a log-scaled gene needs low > 0, got {low}")
    step = spec.get("step", 1)
    if kind == "int" and (not isinstance(step, int) or step < 1):
        raise DipsearchError(f"{where}: step must be a positive integer, got {step!r}")
    gene = Gene(name, kind, default, low=low, high=high, log=log, step=step, level=level)
    if not gene.contains(default):
        raise DipsearchError(f"{where}: default {default!r} is outside [{low}, {high}]" + (f" with step {step}" if kind == "int" else ""))
    return gene


SPACES_DIR = Path(__file__).resolve().parent.parent / "search_spaces"


def find_space(name_or_path: str | Path) -> Path:
    """A path as given, or a bare name ('default', 'wide') looked up in the project's search_spaces/."""
    path = Path(name_or_path)
    if path.exists() or path.suffix == ".toml" or len(path.parts) > 1:
        return path
    candidate = SPACES_DIR / f"{path.name}.toml"
    if candidate.exists():
        return candidate
    known = sorted(p.stem for p in SPACES_DIR.glob("*.toml")) if SPACES_DIR.is_dir() else []
    raise DipsearchError(
        f"search space {str(name_or_path)!r} is neither a file nor a known space name"
        + (f" ({', '.join(known)})" if known else "")
    )
