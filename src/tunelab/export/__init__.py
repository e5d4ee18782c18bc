"""Export: a trained model as a merged Hugging Face folder (transformers, vLLM) or a GGUF file (llama.cpp)."""

from tunelab.export.service import FORMATS, export_model

__all__ = ["FORMATS", "export_model"]
