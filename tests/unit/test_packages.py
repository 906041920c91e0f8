"""Each top-level package resolves inside this repository, not to a same-named install."""

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["agents", "tools", "graphs", "prompts", "ui", "store", "evals"])
def test_package_resolves_inside_repo(name: str) -> None:
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent == REPO / name
