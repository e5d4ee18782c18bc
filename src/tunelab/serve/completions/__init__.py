"""POST /v1/completions: plain-text prompts continued, no chat template (as completion data is trained)."""
