"""mul: multilingual recipes (ISO 639-2 "multiple languages")."""
