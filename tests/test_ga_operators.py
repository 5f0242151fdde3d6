"""The GA's variation operators: every child is a genome its space validates, whatever the gene kinds."""

import math
import random

import pytest

from dipsearch.nets.space import SPACES_DIR, Gene, load_space, space_from_dict
from dipsearch.search.ga.operators import blocks, crossover, mutate, mutate_value

MIXED = {
    "name": "mixed",
    "genes": {
        "depth": {"kind": "int", "low": 1, "high": 4, "default": 2},
        "lr": {"kind": "float", "low": 0.001, "high": 0.1, "log": True, "default": 0.01},
        "reg_noise_std": {"kind": "float", "low": 0.0, "high": 0.1, "default": 0.03},
        "input_depth": {"kind": "int", "low": 2, "high": 32, "step": 3, "default": 8},
        "activation": {"kind": "choice", "choices": ["leaky_relu", "elu"], "default": "elu"},
    },
    "levels": {
        "n_down": {"kind": "int", "low": 4, "high": 64, "log": True, "default": 8},
        "n_skip": {"kind": "int", "low": 0, "high": 16, "step": 4, "default": 4},
        "upsample": {"kind": "choice", "choices": ["nearest", "bilinear", "bicubic"], "default": "bilinear"},
    },
    "fixed": {"pad": "zero"},
}


@pytest.fixture(scope="module", params=["mixed", "wide", "default"])
def space(request):
    if request.param == "mixed":
        return space_from_dict(MIXED)
    return load_space(SPACES_DIR / f"{request.param}.toml")


def test_mutation_and_crossover_always_give_valid_genomes(space):
    rng = random.Random(0)
    population = [space.default()] + [space.sample(rng) for _ in range(10)]
    for _ in range(300):
        a, b = rng.sample(population, 2)
        for kind in ("level", "uniform"):
            c1, c2 = crossover(space, a, b, rng, kind=kind)
            for child in (c1, c2):
                space.validate(child)
                space.decode(child)
                assert all(child[g] in (a[g], b[g]) for g in space.genes)  # genes are inherited, never invented
        child = mutate(space, a, rng)
        space.validate(child)
        space.decode(child)
        changed = [g for g in space.genes if child[g] != a[g]]
        assert changed and set(changed) <= set(space.active(a))  # only active genes move, at least one
        population[rng.randrange(len(population))] = child


def test_numeric_mutation_respects_bounds_steps_and_log_scale():
    rng = random.Random(1)
    step = Gene("input_depth", "int", 8, low=2, high=32, step=3)
    logint = Gene("n_down[0]", "int", 8, low=4, high=64, log=True)
    logfloat = Gene("lr", "float", 0.01, low=0.001, high=0.1, log=True)
    seen_step, ratios = set(), []
    for _ in range(500):
        v = mutate_value(step, 8, rng)
        assert step.contains(v) and v != 8 and (v - 2) % 3 == 0
        seen_step.add(v)
        w = mutate_value(logint, 4, rng)
        assert logint.contains(w) and w != 4
        x = mutate_value(logfloat, 0.01, rng)
        assert 0.001 <= x <= 0.1
        ratios.append(math.log(x / 0.01))
    assert {5, 11} <= seen_step  # one-step moves both ways happen
    ups = sum(r > 0 for r in ratios)
    assert 150 < ups < 350  # symmetric in log space, not in linear space


def test_choice_mutation_always_picks_another_choice():
    gene = Gene("upsample[0]", "choice", "bilinear", choices=("nearest", "bilinear", "bicubic"))
    rng = random.Random(2)
    values = {mutate_value(gene, "bilinear", rng) for _ in range(50)}
    assert values == {"nearest", "bicubic"}
    single = Gene("x", "choice", "a", choices=("a",))
    assert mutate_value(single, "a", rng) == "a"


def test_level_crossover_cuts_at_level_boundaries():
    space = space_from_dict(MIXED)
    units = blocks(space)
    assert units[0] == ["depth", "lr", "reg_noise_std", "input_depth", "activation"]
    assert units[1] == ["n_down[0]", "n_skip[0]", "upsample[0]"] and len(units) == 5
    rng = random.Random(3)
    a, b = space.sample(rng), space.sample(rng)
    for _ in range(50):
        c1, _ = crossover(space, a, b, rng, kind="level")
        origin = [
            "a" if all(c1[g] == a[g] for g in u) else "b" if all(c1[g] == b[g] for g in u) else "?" for u in units
        ]
        assert "?" not in origin
        first_b = origin.index("b") if "b" in origin else len(origin)
        assert set(origin[first_b:]) <= {"b"} and first_b >= 1  # one cut, globals always from the first parent


def test_mutation_probability_per_gene():
    space = load_space(SPACES_DIR / "wide.toml")
    rng = random.Random(4)
    genome = space.default()
    n_active = len(space.active(genome))
    counts = [sum(mutate(space, genome, rng, indpb=0.5)[g] != genome[g] for g in space.genes) for _ in range(200)]
    assert abs(sum(counts) / len(counts) - 0.5 * n_active) < 0.1 * n_active
    default_counts = [sum(mutate(space, genome, rng)[g] != genome[g] for g in space.genes) for _ in range(200)]
    assert 1.5 < sum(default_counts) / 200 < 3.0  # two genes expected (a few mutate to an equal value at a bound)
