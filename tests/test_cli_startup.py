"""Start-up of the CLI: building the parser imports nothing heavy, the names it offers are the modules' own,
Ctrl-C while starting prints no traceback, and output to a pipe is not wrapped at 80 columns."""

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "numpy", "optuna", "deap", "matplotlib", "PIL", "rich", "skimage", "scipy", "dask", "distributed")


def _python(code: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, env=env, **kwargs
    )


def test_building_the_parser_imports_no_heavy_package():
    done = _python(f"""
        import json, sys
        from dipsearch.cli import build_parser
        build_parser()
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [], "a *_cmd module imports these at module level or in register()"


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["fit", "--help"],
        ["search", "ga", "--help"],
        ["search", "bayes", "--help"],
        ["stop-bench", "--help"],
        ["worker", "--help"],
    ],
)
def test_help_answers_without_heavy_imports(argv):
    done = _python(
        f"""
        import json, sys
        from dipsearch.cli import main
        try:
            main(sys.argv[1:])
        except SystemExit as exit:
            print(json.dumps([exit.code, [m for m in {HEAVY!r} if m in sys.modules]]), file=sys.stderr)
    """,
        *argv,
    )
    code, heavy = json.loads(done.stderr.strip().splitlines()[-1])
    assert code == 0 and heavy == []
    assert "usage: dipsearch" in done.stdout


def test_the_cli_names_are_the_modules_own():
    from dipsearch import preselect
    from dipsearch.cli import names
    from dipsearch.problems import noise, sr
    from dipsearch.problems.base import task_names
    from dipsearch.scoring import fitness
    from dipsearch.search.bayes import samplers, storage
    from dipsearch.search.ga import operators
    from dipsearch.stopping import DETECTORS

    assert names.NOISE_KINDS == noise.NOISE_KINDS and names.DEFAULT_LEVEL == noise.DEFAULT_LEVEL
    assert names.TASKS == task_names() and names.SR_FACTORS == sr.SR_FACTORS
    assert names.FITNESSES == tuple(fitness.FITNESSES) and names.DETECTORS == tuple(DETECTORS)
    assert names.SAMPLERS == samplers.SAMPLERS and names.PRUNERS == samplers.PRUNERS
    assert names.CROSSOVERS == operators.CROSSOVERS
    from dipsearch import baselines
    from dipsearch.pipelines import choosers

    assert names.BASELINE_TASKS == {n: b.tasks for n, b in baselines.BASELINES.items()}
    assert names.CHOOSERS == tuple(choosers.CHOOSERS)
    assert names.RESTORE_BUDGETS == {
        n: (b.space, b.pop, b.gens, b.trials, b.search_iters, b.iters) for n, b in choosers.BUDGETS.items()
    }
    from dipsearch import variants

    assert names.VARIANTS == tuple(variants.VARIANTS) and names.VARIANT_GENES == variants.VARIANT_GENES
    assert names.SGLD_ITERS == variants.VARIANTS["sgld"].default_iters
    assert names.SGLD_DEFAULTS == {k: getattr(variants.VariantSettings(), k) for k in names.SGLD_DEFAULTS}
    assert (
        names.PRESELECT_METRICS == tuple(preselect.METRICS)
        and names.DEFAULT_PRESELECT_METRIC == preselect.DEFAULT_METRIC
    )
    assert names.STALE_AFTER == storage.STALE_AFTER and names.SQLITE_HELP == storage.SQLITE_HELP


def test_the_package_imports_its_public_names_on_first_use():
    done = _python("""
        import sys
        import dipsearch
        assert "torch" not in sys.modules
        from dipsearch.fitting.fit import FitConfig
        assert callable(dipsearch.fit) and dipsearch.fit.__name__ == "fit"
        assert dipsearch.ArchSpec.__name__ == "ArchSpec" and dipsearch.make_problem.__module__ == "dipsearch.problems.make"
        assert set(dipsearch.__all__) <= set(dir(dipsearch))
        try:
            dipsearch.nothing
        except AttributeError as err:
            print(err)
    """)
    assert done.returncode == 0, done.stderr
    assert "module 'dipsearch' has no attribute 'nothing'" in done.stdout


@pytest.mark.parametrize("module", ["dipsearch.cli.ga_cmd", "torch"])
def test_ctrl_c_during_start_up_prints_no_traceback(tmp_path, module):
    # Deterministic stand-in for a Ctrl-C in the first second: the import of `module` is interrupted
    # (a module the parser needs, or torch once the command runs).
    done = _python(
        f"""
        import sys

        class Interrupt:
            def find_spec(self, name, path=None, target=None):
                if name == {module!r}:
                    raise KeyboardInterrupt
                return None

        sys.meta_path.insert(0, Interrupt())
        sys.argv = ["dipsearch", *sys.argv[1:]]
        from dipsearch.launch import run
        run()
    """,
        "fit",
        "--demo",
        "--iters",
        "1",
        "--out",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == 130
    assert done.stderr.strip() == "interrupted" and "Traceback" not in done.stderr


def test_output_to_a_pipe_is_not_wrapped(monkeypatch):
    import io

    from rich.table import Table

    from dipsearch.cli import consoles

    out = io.StringIO()  # not a terminal, as a file or a pipe
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setenv("COLUMNS", "80")
    console, _ = consoles()
    command = "refit the winner: dipsearch fit --clean " + "/a_long_folder_name" * 8 + "/img.png --arch best_arch.toml"
    console.print(command, highlight=False)
    table = Table("trial", "architecture")
    table.add_row("1", "d5 down 8/16/32/64/128 up 8/16/32/64/128 skip 0/0/0/4/4 kd 3/3/3/3/3 ku 3/3/3/3/3 bil/bil/bil")
    console.print(table)
    lines = out.getvalue().splitlines()
    assert lines[0] == command and len(command) > 160
    assert any("bil/bil/bil" in line for line in lines) and "…" not in out.getvalue()


def test_ctrl_c_ends_worker_processes_without_a_traceback():
    # The terminal sends Ctrl-C to every process of the command; a pool worker must not print a traceback.
    done = _python("""
        import signal
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool
        from multiprocessing import get_context

        from dipsearch.scoring.executors import quiet_worker

        if __name__ == "__main__":
            pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=quiet_worker,
                                       initargs=("os:getpid",))
            try:
                pool.submit(signal.raise_signal, signal.SIGINT).result(timeout=120)
            except BrokenProcessPool:
                print("worker ended")
    """)
    assert done.stdout.strip() == "worker ended", done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr


def test_importing_dipsearch_leaves_optuna_s_log_level_and_the_optuna_commands_set_it(tmp_path):
    done = _python(f"""
        import optuna
        optuna.logging.set_verbosity(optuna.logging.DEBUG)  # a library user's own choice
        import dipsearch.pipelines.choosers, dipsearch.search.bayes, dipsearch.search.bayes.display, dipsearch.search.bayes.study
        print(optuna.logging.get_verbosity())
        from dipsearch.cli import main
        code = main(["worker", "--storage", {str(tmp_path / "empty.journal")!r}, "--study", "nope"])
        print(code, optuna.logging.get_verbosity())
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [str(logging.DEBUG), f"2 {logging.WARNING}"]
