"""`tunelab tune`: an optuna study in the workspace's own database, pruned runs that end cleanly, a best model."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from toydata import intent_rows
from tunelab.errors import InputError
from tunelab.store import open_store
from tunelab.train import tune as tune_module
from tunelab.train.config import TrainConfig
from tunelab.train.tune import tune


@pytest.fixture
def intents(prepared) -> str:
    return prepared(intent_rows(60), "intents").id


def _settings(dataset: str, model: Path, **search) -> dict:
    return {"dataset": dataset, "base_model": str(model), "task": "classification", "seed": 0, "threads": 1,
            "max_steps": 4, "eval_every": 2, "batch_size": 8, "search": search}


class PruneTrialOne(optuna.pruners.BasePruner):
    """Prunes trial 1 at its first report: MedianPruner needs more trials than a test can afford."""

    def prune(self, study, trial) -> bool:
        return trial.number == 1


def test_a_study_of_three_trials_lives_in_the_workspace_database(store, intents, tiny_encoder, monkeypatch,
                                                                  tmp_path, cli):
    monkeypatch.setattr(tune_module, "pruner", PruneTrialOne)
    config = tmp_path / "tune.yaml"
    config.write_text(json.dumps(_settings(intents, tiny_encoder, **{
        "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}, "lora.r": {"choices": [2, 4]}})))
    result = tune(store, TrainConfig.model_validate(json.loads(config.read_text())), trials=3)

    url = f"sqlite:///{store.workspace.home / 'tunelab.db'}"
    study = optuna.load_study(study_name=result["study"], storage=url)  # plain optuna, same database
    assert result["study"] == f"tune-{intents}-classification"
    assert len(study.trials) == 3 and result["trials"] == 3
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2 and states[1] == optuna.trial.TrialState.PRUNED
    for trial in study.trials:
        assert set(trial.params) == {"learning_rate", "lora.r"} and 1e-4 <= trial.params["learning_rate"] <= 1e-2

    runs = {r["id"]: r for r in store.list_runs()}
    pruned = runs[study.trials[1].user_attrs["run"]]
    assert pruned["state"] == "pruned" and pruned["model_id"] is None and "pruned by the tuner at step 2" in \
        pruned["error"]
    assert pruned["config_resolved"]["lora"]["r"] == study.trials[1].params["lora.r"]

    best = study.best_trial
    assert result["best_trial"] == best.number and result["best_value"] == pytest.approx(best.value)
    assert result["best_params"] == best.params
    model = store.get_model(result["model"])
    assert model["id"] == best.user_attrs["model"] and model["stage"] == "candidate"
    assert runs[result["run"]]["best_val_loss"] == pytest.approx(best.value)
    assert runs[result["run"]]["config_resolved"]["learning_rate"] == pytest.approx(best.params["learning_rate"])

    # the store still opens next to optuna's tables (each keeps its own Alembic version table)
    open_store().close()
    done = cli("runs", "list", "--json")
    assert done.returncode == 0 and len(json.loads(done.stdout)["runs"]) == 3


def test_bad_search_keys_are_reported_at_once(store, intents, tiny_encoder, tmp_path, cli):
    cfg = TrainConfig.model_validate(_settings(intents, tiny_encoder, **{
        "learning_rte": {"low": 1e-4, "high": 1e-2}, "lora.rank": {"choices": [4, 8]},
        "method": {"low": 1, "high": 2}, "batch_size": {"low": 2.5, "high": 8}, "warmup_ratio": {"choices": [0.1, 2]},
        "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}}))
    with pytest.raises(InputError) as raised:
        tune(store, cfg)
    message = str(raised.value)
    assert "5 problem(s)" in message
    for expected in ("search.learning_rte: not a tunable config key", "search.lora.rank: not a tunable config key",
                     "search.method: a low/high range needs a numeric key", "search.batch_size: batch_size is an "
                     "integer", "search.warmup_ratio: 2 is not accepted"):
        assert expected in message
    assert "tunable keys: " in message and "lora.r," in message and "learning_rate" in message
    assert "search.learning_rate" not in message

    config = tmp_path / "tune.yaml"
    config.write_text(json.dumps(_settings(intents, tiny_encoder, dropuot={"choices": [0.0, 0.1]})))
    done = cli("tune", str(config), "--trials", "1", "--json")
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert "search.dropuot: not a tunable config key" in done.stderr and "tunable keys:" in done.stderr
    assert done.stdout == "" and not optuna.get_all_study_names(f"sqlite:///{store.workspace.home / 'tunelab.db'}")
