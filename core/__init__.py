"""encoder-recipes: a plugin-based registry of multilingual encoder pretraining recipes."""

__version__ = "0.1.0"
