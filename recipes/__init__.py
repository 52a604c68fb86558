"""The seed recipes, shipped as package data so the installed package finds them."""

from importlib.resources import files
from pathlib import Path


def recipe_path(filename: str) -> Path:
    """Path of a shipped recipe file, in a source checkout or an installed package."""
    return Path(str(files(__name__).joinpath(filename)))
