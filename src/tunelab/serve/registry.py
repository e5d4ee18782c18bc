"""Which models the server answers for, and the weights behind them.

A reference is a registered tunelab model (id, id prefix or name), a base model short name (`smollm2-135m`,
`minilm-l6`) or a model folder. Causal LoRA adapters share their base: ONE copy of the base per folder lives in
memory, owned by one `Engine`, and each adapter is loaded into it with PEFT under the adapter's model id. A request
for the adapter runs with that adapter set; a request for the base runs with every adapter switched off. A base
brought in only by its adapters is served too (clients may want to compare) and leaves with its last adapter.
Full fine-tunes generate on an engine of their own; (token) classifiers (adapters merged in memory) and encoders run
on the request's thread under a lock of their own.

`load` and `unload` may run while the server answers: they are serialised by one lock, change adapters only between
batches (under the engine's lock), and readers see the table of served models swapped whole.

A registered model stays servable only while its stage allows it: `withdraw_unservable` (run by the server's stage
watch) unloads one that an erasure quarantined, a reviewer retired or someone deleted after it was loaded, and the
names that reached it then answer why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tunelab.errors import ConflictError, NotFoundError
from tunelab.evaluate.predict import stop_token_ids
from tunelab.govern.registry import check_servable, serving_refusal
from tunelab.models import BASE_MODELS, resolve_base_model
from tunelab.serve import loaders
from tunelab.serve.engine import Engine
from tunelab.serve.settings import ServeSettings
from tunelab.store import Store

TASKS = {"generation": "chat and text completions", "embedding": "embeddings", "classification": "classifications",
         "token_classification": "entities"}


@dataclass
class Served:
    """A model clients can call by name, as /v1/models lists it."""

    id: str
    task: str  # generation | embedding | classification | token_classification
    kind: str  # base | adapter | full
    root: str  # the folder it was loaded from
    tokenizer: Any
    parent: str | None = None  # adapters: the base they run on
    aliases: tuple[str, ...] = ()  # other names that reach it (the reference it was loaded by, its name)
    project: str | None = None  # a registered model's project; None: a base model or folder, anyone's
    engine: Engine | None = None  # generation
    adapter: str | None = None  # the adapter's name inside engine.model
    model: Any = None  # embedding and (token) classification
    labels: list[str] | None = None  # classification, in class-id order; token classification: the entity types
    explicit: bool = True  # False for a base loaded only because an adapter needs it
    created: int = field(default_factory=lambda: int(time.time()))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    @cached_property
    def stop_ids(self) -> set[int]:
        return set(stop_token_ids(self.tokenizer))

    @property
    def context_length(self) -> int | None:
        config = getattr(self.engine.model if self.engine else self.model, "config", None)
        return getattr(config, "max_position_embeddings", None)


class ModelRegistry:
    def __init__(self, store: Store, settings: ServeSettings, on_batch: Callable[[int], None] | None = None) -> None:
        self.store, self.settings, self._on_batch = store, settings, on_batch
        self._served: dict[str, Served] = {}  # replaced whole on change, so readers need no lock
        self._withdrawn: dict[tuple[str | None, str], str] = {}  # (project, name) -> why it is no longer served
        self._lock = threading.RLock()

    def get(self, name: str, project: str | None = None) -> Served | None:
        """The served model `name` reaches (its id first, then an alias); with `project`, among the models of that
        project and base models only, so two tenants' models of one name never meet."""
        served = self._served
        entry = served.get(name)
        if entry is not None and (project is None or entry.project in (None, project)):
            return entry
        visible = (s for s in served.values() if project is None or s.project in (None, project))
        return next((s for s in visible if name in s.aliases), None)

    def withdrawn(self, name: str, project: str | None) -> str | None:
        """Why `name` (in `project`) is no longer served, if the stage watch withdrew what it reached."""
        return self._withdrawn.get((project, name))

    def served(self) -> list[Served]:
        return list(self._served.values())

    def load(self, ref: str, store: Store | None = None) -> Served:
        """Load a model (a no-op if it is served already) and return it; errors name what exists.

        A registered model is looked up in `store`'s project (by default the server's): another's is not found.
        """
        store = store or self.store
        with self._lock:
            existing = self.get(ref, store.project)
            if existing is not None:
                existing.explicit = True
                return existing
            if ref in BASE_MODELS or Path(ref).expanduser().is_dir():
                return self._load_base(ref)
            try:
                record = store.get_model(ref)
            except NotFoundError:
                if "/" in ref:  # a hub name
                    return self._load_base(ref)
                raise NotFoundError(f"no model {ref!r}", self._known_hint(store)) from None
            existing = self.get(record["id"], store.project)
            if existing is None:
                check_servable(store, record, self.settings.allow_unapproved)
            return existing or self._load_registered(record, ref, store)

    def unload(self, name: str, project: str | None = None) -> Served:
        """Stop serving a model (of `project`, if given); refuses a base while adapters run on it. Returns what was
        unloaded."""
        with self._lock:
            entry = self.get(name, project)
            if entry is None:
                raise NotFoundError(f"model {name!r} is not loaded",
                                    f"loaded: {', '.join(self._served) or 'none'}")
            children = [s for s in self._served.values() if s.parent == entry.id]
            if children:
                names = [s.id if project in (None, s.project) else "one of another project" for s in children]
                raise ConflictError(f"adapters {', '.join(names)} run on {entry.id}", "unload them first")
            self._remove(entry)
            if entry.adapter is not None:
                with entry.engine.lock:
                    entry.engine.model = loaders.detach_adapter(entry.engine.model, entry.adapter)
                base = self._served.get(entry.parent)
                if base is not None and not base.explicit and not any(s.parent == base.id for s in self.served()):
                    self.unload(base.id)
            elif entry.engine is not None:
                entry.engine.close()
            return entry

    def withdraw_unservable(self) -> list[tuple[str, str]]:
        """Unload every served registered model whose stage no longer allows serving it, by the rule `load` applied
        (one query for them all, whatever their projects); audited as `serve.withdraw`. Returns (model, reason)."""
        registered = [s for s in self.served() if s.project is not None]
        stages = self.store.model_stages([s.id for s in registered]) if registered else {}
        withdrawn = []
        for entry in registered:
            stage = stages.get(entry.id, "deleted")
            refusal = serving_refusal(entry.id, stage, self.settings.allow_unapproved) if stage != "deleted" else \
                NotFoundError(f"model {entry.id} is no longer registered")
            if refusal is None:
                continue
            with self._lock:
                if self._served.get(entry.id) is not entry:  # unloaded meanwhile
                    continue
                self.unload(entry.id)
                self._withdrawn = {**self._withdrawn, **{(entry.project, n): refusal.message for n in entry.names}}
            self.store.in_project(entry.project).audit("serve.withdraw", entry.id, {"stage": stage})
            withdrawn.append((entry.id, refusal.message))
        return withdrawn

    def close(self) -> None:
        for entry in self.served():
            if entry.engine is not None and entry.adapter is None:
                entry.engine.close()
        self._served = {}

    # ------------------------------------------------------------------------------------------------ loading
    def _add(self, entry: Served) -> Served:
        self._served = {**self._served, entry.id: entry}
        self._withdrawn = {(project, name): why for (project, name), why in self._withdrawn.items()
                           if project != entry.project or name not in entry.names}  # served again
        return entry

    def _remove(self, entry: Served) -> None:
        self._served = {k: v for k, v in self._served.items() if k != entry.id}

    def _known_hint(self, store: Store) -> str:
        recent = list(dict.fromkeys(m["name"] for m in reversed(store.list_models())))[:10]
        return (f"recent registered models: {', '.join(recent) or 'none'} (`tunelab models list` has them all); "
                f"base models: {', '.join(BASE_MODELS)}; or a model folder")

    def _load_base(self, ref: str) -> Served:
        resolved = resolve_base_model(ref, self.store.workspace)
        kind = resolved.architecture or loaders.architecture(resolved.path)
        if kind == "causal":
            return self._causal_base(resolved.path, ref, explicit=True)
        tokenizer = loaders.tokenizer_for(resolved.path)
        if kind in ("classifier", "tagger"):
            model = (loaders.load_classifier if kind == "classifier" else loaders.load_tagger)(resolved.path)
            labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
            task = "classification" if kind == "classifier" else "token_classification"
            return self._add(Served(ref, task, "base", resolved.path, tokenizer, model=model,
                                    labels=labels if kind == "classifier" else _types(labels)))
        return self._add(Served(ref, "embedding", "base", resolved.path, tokenizer, model=loaders.load_encoder(
            resolved.path)))

    def _causal_base(self, path: str, name: str, explicit: bool) -> Served:
        """The served base for a folder, loaded with its engine the first time."""
        base = next((s for s in self._served.values() if s.kind == "base" and s.root == path and s.engine), None)
        if base is not None:
            base.explicit = base.explicit or explicit
            return base
        if name in self._served:  # another folder took the name: this one goes by its path
            name = path
        tokenizer = loaders.tokenizer_for(path)
        return self._add(Served(name, "generation", "base", path, tokenizer, explicit=explicit,
                                engine=self._engine(name, loaders.load_causal(path), tokenizer)))

    def _engine(self, name: str, model: Any, tokenizer: Any) -> Engine:
        s = self.settings
        return Engine(name, model, tokenizer.pad_token_id, max_batch=s.max_batch, max_queue=s.max_queue,
                      batch_wait_ms=s.batch_wait_ms, on_batch=self._on_batch)

    def _load_registered(self, record: dict[str, Any], ref: str, store: Store) -> Served:
        from tunelab.train.service import load_model

        aliases = tuple(dict.fromkeys(a for a in (ref, record["name"]) if a != record["id"]))
        common = {"root": record["path"], "aliases": aliases, "project": record["project_id"]}
        if record["task"] in ("classification", "token_classification"):
            model, tokenizer = load_model(record)
            labels = [label for label, _ in sorted(record["labels"].items(), key=lambda item: item[1])]
            if record["task"] == "token_classification":
                labels = _types(labels)
            return self._add(Served(record["id"], record["task"], record["kind"], tokenizer=tokenizer,
                                    model=model.to(loaders.device()), labels=labels, **common))
        if record["kind"] != "adapter":
            model, tokenizer = load_model(record)
            model = model.to(loaders.device())
            return self._add(Served(record["id"], "generation", record["kind"], tokenizer=tokenizer,
                                    engine=self._engine(record["id"], model, tokenizer), **common))
        base = self._causal_base(record["base_model"], store.trained_base(record), explicit=False)
        tokenizer = loaders.tokenizer_for(record["path"]) if loaders.has_tokenizer(record["path"]) else base.tokenizer
        with base.engine.lock:
            base.engine.model = loaders.attach_adapter(base.engine.model, record["path"], record["id"])
        return self._add(Served(record["id"], "generation", "adapter", tokenizer=tokenizer, parent=base.id,
                                engine=base.engine, adapter=record["id"], **common))


def _types(tags: list[str]) -> list[str]:
    """The entity types of a BIO tag set (B-city, I-city, O -> city)."""
    return sorted({tag[2:] for tag in tags if tag != "O"})
