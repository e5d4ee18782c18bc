"""The `models` and `evaluations` tables: registered models, their registry stage, and their scores.

A mixin of `Store`. The stage column is written here too (`set_stage`), for `tunelab.govern.registry` and erasure's
quarantine, so the models table has one owner; approvals live in their own table (`store.approvals`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update

from tunelab.errors import NotFoundError
from tunelab.store.rows import Table, now, row_dict
from tunelab.store.schema import EvaluationRow, ModelRow


class ModelTable(Table):
    def add_model(self, model_id: str, name: str, kind: str, path: str, dataset_id: str | None,
                  **details: Any) -> None:
        """Register a model; `details` are run_id, task, base_model, labels, metrics, stage."""
        with self.session() as s, s.begin():
            s.add(ModelRow(id=model_id, name=name, kind=kind, path=path, dataset_id=dataset_id, created_at=now(),
                           stage=details.pop("stage", "candidate"), project_id=self.project, **details))

    def models_using(self, dataset_id: str) -> list[str]:
        """Every project's models trained on the dataset: a lineage guard must see them all."""
        with self.session() as s:
            return list(s.scalars(select(ModelRow.id).where(ModelRow.dataset_id == dataset_id)))

    def get_model(self, ref: str) -> dict[str, Any]:
        """A model by id, id prefix or name (its newest), or NAME@STAGE: the newest of that name in that stage, so
        clients keep one name (`support-bot@production`) while versions change."""
        name, at, stage = ref.rpartition("@")
        if not at or not name:
            return self._lookup(ModelRow, "model", ref, "train one with `tunelab train CONFIG.yaml`")
        with self.session() as s:
            row = s.scalars(self._own(select(ModelRow), ModelRow).where(ModelRow.name == name, ModelRow.stage == stage)
                            .order_by(ModelRow.created_at.desc())).first()
            if row is None:
                stages = sorted({st or "candidate" for st in s.scalars(self._own(select(ModelRow.stage), ModelRow)
                                                                       .where(ModelRow.name == name))})
                hint = f"its versions are in: {', '.join(stages)}" if stages else f"no model is named {name!r}"
                raise NotFoundError(f"no model {name!r} in stage {stage!r}", hint)
            return row_dict(row)

    def list_models(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [row_dict(r) for r in s.scalars(self._own(select(ModelRow), ModelRow)
                                                   .order_by(ModelRow.created_at))]

    def run_of(self, model: dict[str, Any]) -> dict[str, Any] | None:
        """The run that trained a model, or None (registered without one, or the run was deleted since)."""
        if not model["run_id"]:
            return None
        try:
            return self.get_run(model["run_id"])
        except NotFoundError:
            return None

    def trained_base(self, model: dict[str, Any], run: dict[str, Any] | None = None) -> str:
        """The base as the run named it (`smollm2-135m`, a hub id, a folder), not the local folder an adapter
        points at: what a card shows, the base an evaluation compares with, the name a server loads the base by.
        `run`: the model's run, when the caller holds it already."""
        return (run or self.run_of(model) or {}).get("base_model") or model["base_model"]

    def model_stages(self, model_ids: list[str]) -> dict[str, str]:
        """The registry stage of each model, whatever its project (a running server's watch over what it serves);
        a model that is no longer registered is missing from the answer."""
        with self.session() as s:
            rows = s.execute(select(ModelRow.id, ModelRow.stage).where(ModelRow.id.in_(model_ids)))
            return {model_id: stage or "candidate" for model_id, stage in rows}

    def set_stage(self, model_id: str, stage: str) -> None:
        """Move a model to a registry stage; the rules (who may, what needs approval) are `tunelab.govern`'s."""
        with self.session() as s, s.begin():
            s.execute(update(ModelRow).where(ModelRow.id == model_id).values(stage=stage))

    # evaluations ----------------------------------------------------------------------------------------------
    def add_evaluation(self, evaluation_id: str, dataset_id: str, split: str, report_path: str,
                       results: list[dict[str, Any]]) -> None:
        """`results`: one {"model_key", "model_id", "role", "metrics"} per model scored."""
        with self.session() as s, s.begin():
            s.add_all(EvaluationRow(evaluation_id=evaluation_id, dataset_id=dataset_id, split=split,
                                    report_path=report_path, created_at=now(), project_id=self.project, **r)
                      for r in results)

    def evaluations(self, model_id: str) -> list[dict[str, Any]]:
        """A registered model's evaluation results, newest first."""
        with self.session() as s:
            rows = s.scalars(self._own(select(EvaluationRow), EvaluationRow).where(EvaluationRow.model_id == model_id)
                             .order_by(EvaluationRow.created_at.desc(), EvaluationRow.id.desc()))
            return [row_dict(r) for r in rows]

    def delete_evaluations(self, dataset_id: str) -> list[str]:
        """Forget the evaluations scored on a dataset; returns their report paths (the reports quote its rows)."""
        with self.session() as s, s.begin():
            rows = s.scalars(select(EvaluationRow).where(EvaluationRow.dataset_id == dataset_id)).all()
            paths = sorted({r.report_path for r in rows})
            s.execute(delete(EvaluationRow).where(EvaluationRow.dataset_id == dataset_id))
            return paths
