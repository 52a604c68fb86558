"""ModernBERT from a recipe: ``build`` (config, model, RoPE stages, attention backend),
``modeling_modernbert_rms`` (the RMSNorm variant, shipped with exports) and
``export`` (Hugging Face directories in and out)."""
