"""What kp.Playbook reaches within a budget, against the same budget spent on plain searches.

The task is the playbook demo's (an MLP on scikit-learn's digits, offline):
depth (1-3 hidden layers), dropout on/off, Adam's learning rate declared in
[1e-5, 1e-3] (two decades below the usual [1e-3, 1e-1]) and 1 - beta_1.
Every method gets the same budget of model trainings over that declared
space, `--epochs` epochs each:

- ``playbook``: `kp.Playbook` with the demo's goals (depth, then dropout),
  `max_epochs=epochs` so that it may not train longer than the others;
- ``quasi_random``: one `kp.QuasiRandomSearch` study over the declared space;
- ``kt_random``: KerasTuner's `RandomSearch` over the declared space.

Each method's chosen configuration is then trained with `--eval-seeds` fresh
seeds outside the budget (the playbook's own final replicates are used for
it: they are part of its budget), and its regret is the mean of those runs
minus the reference: the best configuration of a dense grid over the
*right* space (learning rates 1e-4 to 3e-1 x depth x dropout, 1 - beta_1 at
0.1), its top 3 re-trained with the same fresh seeds. The headline is the
ratio of regrets, each baseline's over the playbook's (above 1: the
playbook got closer), from the mean regrets over `--seeds` repeats.

Usage::

    python benchmarks/autopilot.py [--budget 90] [--seeds 3] [--epochs 3]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402

import kplaybook as kp  # noqa: E402
from kplaybook import datasets  # noqa: E402
from kplaybook import demo  # noqa: E402


def train(hypermodel, values, seed, data, epochs):
    """One training of `values` with `seed`: its best val_loss over the epochs."""
    (x, y), (xv, yv) = data
    hp = kt.HyperParameters()
    hypermodel.build(hp)  # declare the space, then set the values
    hp.values.update(values)
    keras.utils.set_random_seed(seed)
    model = hypermodel.build(hp)
    history = model.fit(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=64, verbose=0)
    keras.backend.clear_session()
    return float(np.nanmin(history.history["val_loss"]))


def evaluate(hypermodel, values, data, epochs, seeds):
    return float(np.mean([train(hypermodel, values, 5000 + s, data, epochs) for s in range(seeds)]))


def reference(hypermodel, data, epochs, seeds):
    """The best of a dense grid over the right space, its top 3 re-trained with fresh seeds."""
    grid = []
    for lr in np.geomspace(1e-4, 3e-1, 12):
        for depth in (1, 2, 3):
            for dropout in (False, True):
                values = {
                    "learning_rate": float(lr),
                    "num_hidden_layers": depth,
                    "use_dropout": dropout,
                    "one_minus_beta_1": 0.1,
                }
                grid.append((train(hypermodel, values, 0, data, epochs), values))
    grid.sort(key=lambda item: item[0])
    scored = [(evaluate(hypermodel, values, data, epochs, seeds), values) for _, values in grid[:3]]
    return min(scored, key=lambda item: item[0])


def run_playbook(hypermodel, data, budget, epochs, seed, directory):
    (x, y), (xv, yv) = data
    playbook = kp.Playbook(
        hypermodel,
        goals=list(demo.PLAYBOOK_GOALS),
        max_trials=budget,
        trials_per_study=4,
        seed=seed,
        directory=directory,
        project_name=f"playbook_{seed}",
        overwrite=True,
        final_seeds=5,
    )
    result = playbook.run(
        x,
        y,
        validation_data=(xv, yv),
        epochs=epochs,
        max_epochs=epochs,
        batch_size=64,
        verbose=False,
    )
    return result.best_value, result.best_hyperparameters, result.trials_used


def run_search(tuner, data, epochs):
    (x, y), (xv, yv) = data
    tuner.search(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=64, verbose=0)
    best = tuner.oracle.get_best_trials(1)[0]
    return dict(best.hyperparameters.values), len(tuner.oracle.trials)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=90)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--eval-seeds", type=int, default=5)
    args = parser.parse_args()
    data = datasets.load("digits")
    hypermodel = demo.PlaybookDemoHyperModel()
    started = time.perf_counter()
    best_value, best_values = reference(hypermodel, data, args.epochs, args.eval_seeds)
    print(
        f"reference (dense grid over the right space): val_loss {best_value:.4f} at {best_values}"
    )
    regrets = {"playbook": [], "quasi_random": [], "kt_random": []}
    with tempfile.TemporaryDirectory() as directory:
        for seed in range(args.seeds):
            value, values, used = run_playbook(
                hypermodel, data, args.budget, args.epochs, seed, directory
            )
            regrets["playbook"].append(value - best_value)
            print(f"seed {seed} playbook      {used:3d} trainings  val_loss {value:.4f}  {values}")
            for name, tuner in (
                (
                    "quasi_random",
                    kp.QuasiRandomSearch(
                        hypermodel,
                        objective="val_loss",
                        max_trials=args.budget,
                        seed=seed,
                        directory=directory,
                        project_name=f"qr_{seed}",
                        overwrite=True,
                    ),
                ),
                (
                    "kt_random",
                    kt.RandomSearch(
                        hypermodel,
                        objective="val_loss",
                        max_trials=args.budget,
                        seed=seed,
                        directory=directory,
                        project_name=f"rs_{seed}",
                        overwrite=True,
                    ),
                ),
            ):
                values, used = run_search(tuner, data, args.epochs)
                value = evaluate(hypermodel, values, data, args.epochs, args.eval_seeds)
                regrets[name].append(value - best_value)
                print(f"seed {seed} {name:13s} {used:3d} trainings  val_loss {value:.4f}  {values}")
            sys.stdout.flush()
    print()
    print(
        f"Regret (val_loss above the reference {best_value:.4f}), mean over {args.seeds} seeds, "
        f"budget {args.budget} trainings of {args.epochs} epochs:"
    )
    mean = {name: float(np.mean(v)) for name, v in regrets.items()}
    for name, values in regrets.items():
        print(
            f"  {name:13s} {mean[name]:.4f}   (per seed: {', '.join(f'{v:.4f}' for v in values)})"
        )
    for name in ("quasi_random", "kt_random"):
        print(f"Regret ratio {name} / playbook: {mean[name] / max(mean['playbook'], 1e-9):.1f}x")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
