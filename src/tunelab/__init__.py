"""tunelab: from raw business text to a fine-tuned, evaluated and served model."""
__version__ = "0.1.0"
