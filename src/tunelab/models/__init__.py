"""Base models: short names for the packaged models, and any Hugging Face name or local folder."""

from tunelab.models.base import BASE_MODELS, ResolvedModel, list_base_models, quiet_transformers, resolve_base_model

__all__ = ["BASE_MODELS", "ResolvedModel", "list_base_models", "quiet_transformers", "resolve_base_model"]
