"""Component base class and the built-in components (each kind in its own module)."""
