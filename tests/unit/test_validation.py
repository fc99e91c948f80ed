"""pydantic's ValidationError becomes a BadInputError in one place (`dynashift.validation`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, ValidationError

from dynashift.errors import BadInputError
from dynashift.validation import input_message, option_error, parse_event

SRC = Path(__file__).resolve().parents[2] / "src" / "dynashift"


class Options(BaseModel):
    read_capacity: int = Field(default=1, ge=1)
    name: str = "x"


def _error(**values: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Options.model_validate(values)
    return info.value


def test_an_option_error_names_the_flag_on_one_line() -> None:
    error = option_error(_error(read_capacity=0), "target-")
    assert isinstance(error, BadInputError) and error.exit_code == 2
    assert str(error) == (
        "--target-read-capacity: 0 is invalid (Input should be greater than or equal to 1)"
    )
    two = option_error(_error(read_capacity=0, name=5))
    assert str(two).startswith("--read-capacity: 0 is invalid") and "\n" not in str(two)


def test_an_input_error_names_the_path_and_counts_the_rest() -> None:
    class Outer(BaseModel):
        inner: Options

    with pytest.raises(BadInputError) as info:
        parse_event(Outer, {"inner": {"read_capacity": 0, "name": 5}})
    assert str(info.value) == (
        "inner.read_capacity: Input should be greater than or equal to 1 (and 1 more)"
    )
    assert input_message(_error(name=[1, "\n"])).startswith("name: Input should be")


def test_no_other_module_turns_a_validation_error_into_bad_input() -> None:
    """Every `except ValidationError` in src/ either raises what `dynashift.validation` builds
    or does not raise a BadInputError (it falls back, returns None, ...)."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "validation.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ExceptHandler) or node.type is None:
                continue
            if "ValidationError" not in ast.unparse(node.type):
                continue
            for inner in ast.walk(ast.Module(body=node.body, type_ignores=[])):
                if not (isinstance(inner, ast.Raise) and isinstance(inner.exc, ast.Call)):
                    continue
                raised = ast.unparse(inner.exc.func)
                built_here = "option_error" in raised or "input_message" in ast.unparse(inner.exc)
                if "Error" in raised and not built_here:
                    offenders.append(f"{path.relative_to(SRC)}:{inner.lineno} raises {raised}")
    assert offenders == []
