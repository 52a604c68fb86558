"""Hook implementations of the zh language plugin."""

from encoder_recipes.hookspecs import hookimpl
