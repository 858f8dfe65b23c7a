"""Configuration: the YAML models, loading with file:line errors, secrets, schema."""
