"""ArgumentError: one message for Python callers (argument names) and the CLI (the flags that set them)."""

import pytest

from dipsearch.cli import argument_flags, build_parser, main
from dipsearch.errors import ArgumentError, DipsearchError


def test_library_message_names_arguments():
    err = ArgumentError("{workers} must be >= 1, got {value}; or use {device:cpu}", value=0)
    assert isinstance(err, DipsearchError)
    assert str(err) == "workers must be >= 1, got 0; or use device=cpu"


def test_cli_rendering_names_flags():
    err = ArgumentError("{eval_scale} must be 1, 0.5 or 0.25, got {value:g}; or use {device:cpu}", value=0.3)
    assert err.render({"eval_scale": "--eval-scale", "device": "--device"}) == (
        "--eval-scale must be 1, 0.5 or 0.25, got 0.3; or use --device cpu"
    )


def test_values_are_never_read_as_fields():
    err = ArgumentError("no file {path}", path="/data/{x}.png")
    assert str(err) == "no file /data/{x}.png"


def test_flags_of_the_subcommand_that_ran():
    parser = build_parser()
    args = parser.parse_args(["search", "ga", "--demo"])
    flags = argument_flags(parser, args)
    assert flags["eval_scale"] == "--eval-scale" and flags["workers"] == "--workers"
    assert flags["observation"] == "OBSERVATION"


def test_cli_prints_flag_names(monkeypatch, capsys):
    def bad(args, console):
        raise ArgumentError("{iters} must be >= 1, got {value}", value=0)

    parser_func = build_parser  # register() binds fit's run as a parser default: replace it there
    monkeypatch.setattr("dipsearch.cli.build_parser", lambda: _with_func(parser_func(), bad))
    assert main(["fit", "--demo"]) == 2
    assert "error: --iters must be >= 1, got 0" in capsys.readouterr().err


def _with_func(parser, func):
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict) and "fit" in action.choices:
            action.choices["fit"].set_defaults(func=func)
    return parser


@pytest.mark.parametrize("bad", ["{unclosed"])
def test_bad_template_is_a_programming_error(bad):
    with pytest.raises(ValueError):
        ArgumentError(bad)
