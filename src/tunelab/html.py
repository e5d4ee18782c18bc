"""Self-contained HTML pages (dataset cards, evaluation reports): one look, one escaping rule.

Templates extend `templates/page.html` (the shared style). Autoescape is on: every value comes from user data or
model output and must not become markup; only fragments built by our own code are passed through `Markup`.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import jinja2

SHARED = Path(__file__).parent / "templates"


def render(template: Path, filters: dict[str, Any] | None = None, **context: Any) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([template.parent, SHARED]), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters.update(filters or {})
    return env.get_template(template.name).render(**context)


def data_uri(png: bytes) -> str:
    """Embed a PNG in HTML (`<img src=...>`) so a page is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
