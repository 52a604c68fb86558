"""Hook implementations of the ja language plugin."""

from encoder_recipes.hookspecs import hookimpl
