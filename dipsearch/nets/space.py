"""Search spaces: genes declared in TOML, genomes (gene name -> value), and decoding to an ArchSpec.

A space file has four tables (see search_spaces/default.toml):
  [genes.NAME]   global genes: depth, input_depth, downsample, activation, pad, need1x1_up, k_skip,
                 upsample (all levels alike) and the fit settings lr, reg_noise_std, iters, and the variant
                 genes variant (plain | sgld) and tv (DIP-TV weight; see dipsearch.variants);
  [levels.NAME]  per-level genes n_down, n_up, n_skip, k_down, k_up, k_skip, upsample, declared once and
                 expanded to one gene per level up to the largest depth ("n_down[3]");
  [fixed]        values that are not searched;
  [ties]         a per-level gene that copies another, e.g. n_up = "n_down" for symmetric hourglasses;
  [cross_skip]   (NAS-DIP) searches the cross-scale skip matrix: one 0/1 gene "cross_skip[i][s]" per
                 decoder level i and source s (0 = input, s = encoder level s-1), both below the largest
                 depth; `default` lists the [i, s] pairs that are on in the default genome. Without the
                 table, [fixed] cross_skip = [[i, s], ...] fixes them (pairs beyond a genome's depth drop).
The NAS-DIP upsampling cell is four global genes: up_primitive, up_op, up_kernel, up_act (dipsearch/nets/upcell.py).
Each gene has a kind: int (low, high, optional log/step), float (low, high, optional log), choice
(choices) with a default inside its range. Levels at or beyond the genome's depth are ignored.
A top-level `family = "deep_decoder"` makes the genomes Deep Decoders (genes depth, activation, pad and per
level n_up, k_up, upsample; see search_spaces/deep_decoder.toml); the default family is the hourglass.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import DipsearchError
from ..families import SPEC_CLASSES, DeepDecoderSpec
from ..store.tomlio import load_toml
from .arch import ArchSpec
from .genes import FIT_GENES, FamilyGenes, check_fit_settings, fit_settings_of

Genome = dict[str, Any]

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
    family: str = "hourglass"

    @property
    def family_genes(self) -> FamilyGenes:
        """The genes of this space's network family, as the family declares them."""
        return SPEC_CLASSES[self.family].genes

    @property
    def default_spec(self) -> Any:
        """The family's default network: where settings that are neither searched nor fixed come from."""
        return _default_spec(self.family)

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
        return self.fixed.get(name, getattr(self.default_spec, name, None))

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

    def decode(self, genome: Genome) -> ArchSpec | DeepDecoderSpec:
        depth = self.depth_of(genome)
        arch = {name: self._levels(genome, name, depth) for name in self.family_genes.per_level}
        for name in self.family_genes.arch_globals[1:]:
            arch[name] = self._value(genome, name)
        if self.family == "hourglass":  # NAS-DIP cross-scale skips are an hourglass feature
            arch["cross_skip"] = self._cross_skip(genome, depth)
        return SPEC_CLASSES[self.family].from_dict(arch, source=f"{self.source}: decoded genome")

    def _cross_skip(self, genome: Genome, depth: int) -> list[list[int]]:
        if any(name.startswith("cross_skip[") for name in self.genes):
            pairs = [[i, s] for i in range(depth) for s in range(depth) if genome[cross_skip_gene(i, s)]]
        else:
            pairs = [list(p) for p in self.fixed.get("cross_skip", [])]
        return [[i, s] for i, s in pairs if i < depth and s < depth]

    def fit_settings(self, genome: Genome) -> dict[str, Any]:
        """The fit-setting genes (dipsearch.nets.genes.FIT_GENES) that this space searches or fixes."""
        return fit_settings_of({**self.fixed, **genome})

    def fitting(self, refuse: Callable[[ArchSpec], str | None], image: str) -> tuple[SearchSpace, str | None]:
        """This space cut down to the networks that can fit one image (`image` names it in messages).

        `refuse(spec)` is the fit's own size rule: None when the network fits the image, else why not (the
        CLI passes dipsearch.fitting.fit.check_size for the image's shape). Depth is capped and per-level values that
        would not fit (e.g. 5x5 kernels deep in a reflection-padded net) are dropped, so that no sampled
        candidate is a certain failure. Returns the space (self when nothing had to go) and a one-line note
        saying what was cut; raises DipsearchError when no network of the space fits.
        """
        fit_check = _FitCheck(self, refuse)
        depths = [d for d in self._depth_values() if d <= fit_check.max_depth]
        if not depths:
            smallest = min(self._depth_values())
            raise DipsearchError(
                f"no network of space {self.name!r} fits the {image}; its smallest, of depth {smallest}, is refused: "
                f"{fit_check.refused({**fit_check.context, 'depth': smallest})}"
            )
        genes: dict[str, Gene] = {}
        fixed = dict(self.fixed)
        cut: list[str] = []
        for name, gene in self.genes.items():
            if gene.level is not None and gene.level >= max(depths):
                continue
            values = depths if name == "depth" else fit_check.allowed.get(name)
            if values is None or len(values) == len(_values(gene)):
                genes[name] = gene
                continue
            cut.append(f"{name} {_show(values)} (of {_show(_values(gene))})")
            if len(values) == 1:
                if name == "depth":
                    fixed["depth"] = values[0]
                    continue
                genes[name] = replace(
                    gene, kind="choice", choices=tuple(values), default=values[0], low=None, high=None
                )
                continue
            default = gene.default if gene.default in values else min(values, key=lambda v: abs(v - gene.default))
            if gene.kind == "choice":
                genes[name] = replace(gene, choices=tuple(values), default=default)
            elif list(values) == _values(gene)[: len(values)]:
                genes[name] = replace(gene, high=max(values), default=default)
            else:
                genes[name] = Gene(name, "choice", default, choices=tuple(values), level=gene.level)
        if not cut:
            return self, None
        space = replace(self, genes=genes, fixed=fixed, ties=dict(self.ties))  # keeps every other field (family, ...)
        space.decode(space.default())
        return space, f"space {self.name!r} restricted to the networks that fit the {image}: " + "; ".join(cut)

    def _depth_values(self) -> list[int]:
        if "depth" in self.genes:
            return [int(v) for v in _values(self.genes["depth"])]
        return [self.depth_of({})]


def _values(gene: Gene) -> list[Any]:
    if gene.kind == "choice":
        return list(gene.choices)
    return list(range(int(gene.low), int(gene.high) + 1, gene.step))


def _show(values: list[Any]) -> str:
    numbers = all(isinstance(v, int) for v in values)
    if numbers and len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return "{" + ", ".join(map(str, values)) + "}"


class _FitCheck:
    """Which depths and per-level values fit the image, asking `refuse` (the fit's own size rule).

    Level by level: the level's integer and choice genes are set to their smallest values (the least
    demanding: small kernels), and each value is then tried in that context at the shallowest depth that uses
    the level. The size rule asks each level for room of its own, so a value that fits there fits in every
    deeper network too.
    """

    def __init__(self, space: SearchSpace, refuse: Callable[[ArchSpec], str | None]):
        self.space, self.refuse = space, refuse
        pad = space.genes.get("pad")
        self.pads = list(pad.choices) if pad is not None and pad.kind == "choice" else [None]
        self.allowed: dict[str, list[Any]] = {}
        self.context = space.default()
        self.max_depth = 0
        for level in range(space.max_depth):
            if not self._level_fits(level):
                break
            self.max_depth = level + 1

    def refused(self, genome: Genome) -> str | None:
        # The padding is the global gene the size rule depends on: every candidate padding must fit.
        for pad in self.pads:
            reason = self.refuse(self.space.decode(genome if pad is None else {**genome, "pad": pad}))
            if reason:
                return reason
        return None

    def _level_fits(self, level: int) -> bool:
        context = {**self.context, "depth": level + 1}
        genes = [g for g in self.space.genes.values() if g.level == level and g.kind != "float"]
        for gene in genes:
            context[gene.name] = _smallest(_values(gene))
        if self.refused(context):
            return False
        for gene in genes:
            self.allowed[gene.name] = [v for v in _values(gene) if not self.refused({**context, gene.name: v})]
        self.context = context
        return True


def _smallest(values: list[Any]) -> Any:
    try:
        return min(values)
    except TypeError:  # mixed kinds of choices: no order, keep the first
        return values[0]


def cross_skip_gene(level: int, source: int) -> str:
    return f"cross_skip[{level}][{source}]"


def _cross_skip_genes(spec: Any, max_depth: int, source: str) -> dict[str, Gene]:
    """One 0/1 gene per (decoder level, source); active (its `level`) once both exist at a genome's depth."""
    if not isinstance(spec, dict) or set(spec) - {"default"}:
        raise DipsearchError(f"{source}: [cross_skip] takes one key, default = [[level, source], ...]")
    on = spec.get("default", [])
    if not isinstance(on, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and 0 <= v < max_depth for v in p) for p in on
    ):
        raise DipsearchError(
            f"{source}: [cross_skip] default must be a list of [decoder level, source] pairs with both "
            f"between 0 and {max_depth - 1}, got {on!r}"
        )
    on = {tuple(p) for p in on}
    return {
        cross_skip_gene(i, s): Gene(cross_skip_gene(i, s), "choice", int((i, s) in on), choices=(0, 1), level=max(i, s))
        for i in range(max_depth)
        for s in range(max_depth)
    }


# --------------------------------------------------------------------------- loading


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space TOML file, or a named space ('demo', 'default': find_space)."""
    path = find_space(path)
    data = load_toml(path, what="search-space file")
    return space_from_dict(data, source=str(path))


def space_from_dict(data: dict[str, Any], source: str = "<space>") -> SearchSpace:
    allowed_top = {"name", "description", "family", "genes", "levels", "fixed", "ties", "cross_skip"}
    extra = sorted(set(data) - allowed_top)
    if extra:
        raise DipsearchError(f"{source}: unknown table or key(s) {', '.join(extra)}; allowed: {sorted(allowed_top)}")
    family = data.get("family", "hourglass")
    if family not in SPEC_CLASSES:
        raise DipsearchError(f"{source}: unknown network family {family!r}; choose one of {', '.join(SPEC_CLASSES)}")
    family_genes = SPEC_CLASSES[family].genes
    global_genes, per_level = family_genes.global_genes, family_genes.per_level
    fixed = dict(data.get("fixed", {}))
    ties = dict(data.get("ties", {}))
    for name in fixed:
        if name not in global_genes + per_level + ("cross_skip",):
            raise DipsearchError(f"{source}: [fixed] {name!r} is not a known setting; known: {_known(family_genes)}")
    genes: dict[str, Gene] = {}
    for name, spec in data.get("genes", {}).items():
        if name not in global_genes:
            raise DipsearchError(
                f"{source}: gene {name!r} is not a known global gene; known: {', '.join(global_genes)}"
            )
        genes[name] = _gene(name, spec, source)
    if "depth" in genes:
        depth_gene = genes["depth"]
        lowest = min(depth_gene.choices) if depth_gene.kind == "choice" else depth_gene.low
        if lowest < 1:
            raise DipsearchError(f"{source}: gene 'depth' must be at least 1")
    max_depth = SearchSpace("", genes, fixed, family=family).max_depth
    for name, spec in data.get("levels", {}).items():
        if name not in per_level:
            raise DipsearchError(f"{source}: per-level gene {name!r} is not known; known: {', '.join(per_level)}")
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
    if "cross_skip" in data:
        if "cross_skip" in fixed:
            raise DipsearchError(f"{source}: cross_skip is both searched ([cross_skip]) and fixed ([fixed]); keep one")
        genes.update(_cross_skip_genes(data["cross_skip"], max_depth, source))
    for name, target in ties.items():
        if name not in per_level or target not in per_level:
            raise DipsearchError(
                f"{source}: [ties] {name} = {target!r}: both must be per-level genes ({', '.join(per_level)})"
            )
        if f"{name}[0]" in genes or name in genes:
            raise DipsearchError(f"{source}: [ties] {name!r} is tied to {target!r} but also declared as a gene")
    from ..variants import check_variant_genes  # the variants import the engine, which needs this module's peers

    check_variant_genes(genes, fixed, source)
    check_fit_settings(fixed, f"in [fixed] of {source}")
    space = SearchSpace(str(data.get("name", Path(source).stem)), genes, fixed, ties, source, family)
    for name in per_level:
        _check_levels(space, name)
    space.decode(space.default())  # a default that cannot build is a file error, reported now
    for gene in genes.values():
        _check_range(space, gene)
    return space


def _check_range(space: SearchSpace, gene: Gene) -> None:
    """Every value a gene may take must be usable, or the search would waste candidates on certain failures.

    Each value (of an int or float gene, the ends of the range: see _probe_values) is tried in the default genome,
    at the largest depth so that per-level genes are active, by the rules that own it: the fit settings' limits
    (dipsearch.nets.genes) and the family's spec checks (decode).
    """
    probe = {**space.default(), **({"depth": space.max_depth} if "depth" in space.genes else {})}
    for value in _probe_values(gene):
        where = f"gene {gene.name!r} of {space.source}"
        check_fit_settings(fit_settings_of({gene.name: value}), f"a value of {where}")
        if gene.name in FIT_GENES or gene.name == "depth":
            continue
        try:
            space.decode({**probe, gene.name: value})
        except DipsearchError as err:
            reason = str(err).removeprefix(f"{space.source}: decoded genome: ")
            raise DipsearchError(
                f"{space.source}: gene {gene.name!r} allows {value!r}, which no network can use ({reason}); "
                "narrow its range"
            ) from None


def _probe_values(gene: Gene) -> list[Any]:
    if gene.kind == "choice":
        return list(gene.choices)
    if gene.kind == "float":
        return [gene.low, gene.high]
    # The rules are bounds and parity (odd kernels): the ends and their neighbours on the step grid decide.
    values = _values(gene)
    return sorted({*values[:2], *values[-2:]})


def _check_levels(space: SearchSpace, name: str) -> None:
    """A per-level setting that is not searched must cover every depth the space can sample."""
    source = space.ties.get(name, name)
    if f"{source}[0]" in space.genes or source in space.genes:
        return
    value = space.fixed.get(source, getattr(space.default_spec, source))
    if isinstance(value, (list, tuple)) and len(value) < space.max_depth:
        origin = "[fixed]" if source in space.fixed else "the seed default"
        raise DipsearchError(
            f"{space.source}: depth goes up to {space.max_depth} but {name} ({origin}: {list(value)}) has only "
            f"{len(value)} levels; declare [levels.{source}] or give {source} for every level in [fixed]"
        )


def _known(family_genes: FamilyGenes) -> str:
    return ", ".join(family_genes.global_genes + family_genes.per_level)


@cache
def _default_spec(family: str) -> Any:
    return SPEC_CLASSES[family]()


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
            raise DipsearchError(
                f"{where}: '{label}' must be {'a number' if kind == 'float' else 'an integer'}, got {value!r}"
            )
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
        raise DipsearchError(
            f"{where}: default {default!r} is outside [{low}, {high}]" + (f" with step {step}" if kind == "int" else "")
        )
    return gene


_PACKAGE = Path(__file__).resolve().parents[1]  # dipsearch/, this module being dipsearch/nets/space.py
_CHECKOUT_SPACES = _PACKAGE.parent / "search_spaces"  # the edited copy, in a checkout
_PACKAGED_SPACES = _PACKAGE / "spaces"  # what setup.py ships in an installed wheel
SPACES_DIR = _CHECKOUT_SPACES if _CHECKOUT_SPACES.is_dir() else _PACKAGED_SPACES


def find_space(name_or_path: str | Path) -> Path:
    """A path as given, or a bare name ('default', 'wide') looked up among the named spaces (search_spaces/)."""
    path = Path(name_or_path)
    # A folder that happens to share a space's name (./demo/) does not hide the named space.
    if path.is_file() or path.suffix == ".toml" or len(path.parts) > 1:
        return path
    candidate = SPACES_DIR / f"{path.name}.toml"
    if candidate.exists():
        return candidate
    known = sorted(p.stem for p in SPACES_DIR.glob("*.toml")) if SPACES_DIR.is_dir() else []
    raise DipsearchError(
        f"search space {str(name_or_path)!r} is neither a file nor a known space name"
        + (f" ({', '.join(known)})" if known else f" (no named spaces are installed in {SPACES_DIR})")
    )


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """The space as the TOML tables it was read from, so a worker on another host can rebuild it exactly
    (space_from_dict(space_to_dict(s)) == s) without the space file."""

    def table(gene: Gene) -> dict[str, Any]:
        if gene.kind == "choice":
            return {"kind": "choice", "choices": list(gene.choices)}
        out: dict[str, Any] = {"kind": gene.kind, "low": gene.low, "high": gene.high}
        if gene.log:
            out["log"] = True
        if gene.kind == "int" and gene.step != 1:
            out["step"] = gene.step
        return out

    genes: dict[str, Any] = {}
    levels: dict[str, Any] = {}
    for name, gene in space.genes.items():
        if name.startswith("cross_skip["):
            continue  # rebuilt from the [cross_skip] table below
        if gene.level is None:
            genes[name] = {**table(gene), "default": gene.default}
        elif gene.level == 0:
            base = name.split("[", 1)[0]
            per_level = [
                g.default for g in space.genes.values() if g.level is not None and g.name.startswith(base + "[")
            ]
            levels[base] = {**table(gene), "default": per_level}
    out = {"name": space.name, "genes": genes, "levels": levels, "fixed": dict(space.fixed), "ties": dict(space.ties)}
    cross = [g for g in space.genes.values() if g.name.startswith("cross_skip[")]
    if cross:
        out["cross_skip"] = {"default": [[int(v) for v in g.name[11:-1].split("][")] for g in cross if g.default]}
    return out
