"""The demos, on scikit-learn's digits (offline).

- `run_playbook_demo` (``kplaybook demo``): a small `kp.Playbook` that
  visibly decides: Adam's learning rate is declared two decades too low, then
  a depth goal and a dropout goal, exploitation and the final replicates.
- `run_depth_study` (``kplaybook demo --study``): one nested depth study.
"""

import time

import keras
import keras_tuner as kt

from kplaybook import datasets
from kplaybook import spaces
from kplaybook.playbook import Goal
from kplaybook.playbook import Playbook
from kplaybook.tuners import PlaybookTuner

DEMO_PROJECT = "demo"
PLAYBOOK_PROJECT = "demo_playbook"
SCIENTIFIC = {"num_hidden_layers": [1, 2, 3]}
#: The playbook demo's goals, in order.
PLAYBOOK_GOALS = (
    Goal("depth", scientific={"num_hidden_layers": [1, 2, 3]}),
    Goal("dropout", scientific={"use_dropout": [False, True]}, baseline=False),
)


class PlaybookDemoHyperModel(kt.HyperModel):
    """The playbook demo's MLP: depth and dropout are the goals, Adam's rates the nuisance.

    The learning rate is declared in [1e-5, 1e-3], two decades below the
    usual [1e-3, 1e-1] for Adam on this model, so that the playbook has a
    bad search-space boundary to find and widen.

    Args:
        input_dim: int, features per example.
        num_classes: int.
        units: int, width of each hidden layer (held constant).
    """

    def __init__(self, input_dim=64, num_classes=10, units=64):
        super().__init__()
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.units = units

    def build(self, hp):
        model = keras.Sequential([keras.Input((self.input_dim,))])
        dropout = hp.Boolean("use_dropout", default=False)
        for _ in range(hp.Int("num_hidden_layers", 1, 3)):
            model.add(keras.layers.Dense(self.units, activation="relu"))
            if dropout:
                model.add(keras.layers.Dropout(0.3))
        model.add(keras.layers.Dense(self.num_classes, activation="softmax"))
        learning_rate = hp.Float("learning_rate", 1e-5, 1e-3, sampling="log")
        beta_1 = 1 - hp.Float("one_minus_beta_1", 0.01, 0.5, sampling="log")
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate, beta_1=beta_1),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model


def run_playbook_demo(
    dataset=datasets.OFFLINE_DATASET,
    max_trials=90,
    trials_per_study=4,
    epochs=3,
    directory="saved_studies",
    project_name=PLAYBOOK_PROJECT,
    seed=0,
    overwrite=True,
    batch_size=64,
    verbose=True,
):
    """Run the playbook demo; returns the `kp.Playbook` (its `result` is filled).

    Training may grow to twice `epochs` (`max_epochs`). The time spent inside
    `model.fit` is added up in `TrainingClock.seconds`.

    Example:
        >>> playbook = run_playbook_demo(max_trials=45, epochs=1, directory="/tmp/p")
        >>> print(playbook.result.summary())
    """
    (x, y), (x_val, y_val) = datasets.load(dataset)
    hypermodel = PlaybookDemoHyperModel(
        input_dim=x.shape[1], num_classes=int(max(y.max(), y_val.max())) + 1
    )
    playbook = Playbook(
        hypermodel,
        objective="val_loss",
        goals=list(PLAYBOOK_GOALS),
        max_trials=max_trials,
        trials_per_study=trials_per_study,
        seed=seed,
        directory=directory,
        project_name=project_name,
        overwrite=overwrite,
        replicate_seeds=3,
        final_seeds=5,
    )
    playbook.run(
        x,
        y,
        validation_data=(x_val, y_val),
        epochs=epochs,
        max_epochs=2 * epochs,
        batch_size=batch_size,
        verbose=verbose,
        callbacks=[TrainingClock()],
    )
    return playbook


class TrainingClock(keras.callbacks.Callback):
    """Adds up the wall time spent inside `model.fit` (KerasTuner copies callbacks: the sum is the class's).

    Example:
        >>> TrainingClock.seconds = 0.0
        >>> model.fit(x, y, callbacks=[TrainingClock()])
        >>> print(TrainingClock.seconds)
    """

    seconds = 0.0

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_end(self, logs=None):
        TrainingClock.seconds += time.perf_counter() - self._start


class DepthHyperModel(kt.HyperModel):
    """An MLP classifier whose depth is the scientific hyperparameter.

    Nuisance hyperparameters come from `kp.spaces.adam(hp, budget)`: with a
    budget of 10-24 trials per study that is the learning rate and
    1 - beta_1, the playbook's choice for that budget.

    Args:
        budget: int, trials per study (sizes the optimizer space).
        input_dim: int, features per example.
        num_classes: int.
        units: int, width of each hidden layer (held constant).
    """

    def __init__(self, budget, input_dim=64, num_classes=10, units=64):
        super().__init__()
        self.budget = budget
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.units = units

    def build(self, hp):
        model = keras.Sequential([keras.Input((self.input_dim,))])
        for _ in range(hp.Int("num_hidden_layers", 1, 3)):
            model.add(keras.layers.Dense(self.units, activation="relu"))
        model.add(keras.layers.Dense(self.num_classes, activation="softmax"))
        model.compile(
            optimizer=spaces.adam(hp, self.budget),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model


def run_depth_study(
    dataset=datasets.OFFLINE_DATASET,
    trials_per_study=12,
    epochs=10,
    directory="saved_studies",
    project_name=DEMO_PROJECT,
    seed=0,
    overwrite=True,
    batch_size=64,
):
    """Run the depth study and return its `kp.Study`.

    Example:
        >>> study = run_depth_study(trials_per_study=2, epochs=1, directory="/tmp/s")
    """
    (x, y), (x_val, y_val) = datasets.load(dataset)
    hypermodel = DepthHyperModel(
        trials_per_study, input_dim=x.shape[1], num_classes=int(max(y.max(), y_val.max())) + 1
    )
    tuner = PlaybookTuner(
        hypermodel,
        objective="val_loss",
        scientific=SCIENTIFIC,
        trials_per_study=trials_per_study,
        search="quasi_random",
        seed=seed,
        directory=directory,
        project_name=project_name,
        overwrite=overwrite,
        goal="Does depth help an MLP on digits? (scientific: number of hidden layers)",
    )
    tuner.search(
        x, y, validation_data=(x_val, y_val), epochs=epochs, batch_size=batch_size, verbose=0
    )
    return tuner.study()


def format_best(study):
    """The best trial per scientific value as a printable table."""
    table = study.best_per_scientific()
    columns = [
        c
        for c in list(study.scientific)
        + ["trial_id", "objective", "best_step", "completed", "infeasible"]
        + study.nuisance
        if c in table.columns
    ]
    table = table[columns].rename(columns={"objective": study.objective})
    return table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
