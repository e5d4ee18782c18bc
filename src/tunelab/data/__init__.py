"""Data preparation: import raw files, prepare clean splits, inspect, export and delete dataset versions."""

from tunelab.data.importer import ImportResult, import_data
from tunelab.data.manage import card_path, delete, export, show
from tunelab.data.prepare import prepare

__all__ = ["ImportResult", "card_path", "delete", "export", "import_data", "prepare", "show"]
