"""Hook implementations of the fi language plugin."""

from encoder_recipes.hookspecs import hookimpl
