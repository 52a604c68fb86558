"""Hook implementations registering the built-in components."""

from encoder_recipes.hookspecs import hookimpl
