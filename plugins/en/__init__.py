"""The en plugin: English, with the ModernBERT-base recipe."""
