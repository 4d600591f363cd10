"""Does depth help? A nested study with kplaybook, ready to copy.

Scientific hyperparameter: the number of hidden layers of an MLP.
Nuisance hyperparameters: Adam's learning rate and 1 - beta_1, chosen by
`kp.spaces.adam` for the trial budget and searched quasi-randomly, with the
same nuisance points for every depth (a paired comparison).

Offline (default) it uses scikit-learn's digits; on Colab pass a TFDS name:

    python examples/depth_study.py                      # digits, offline
    python examples/depth_study.py --dataset mnist      # TFDS, needs internet

Re-running the same command resumes the study where it stopped.
"""

import argparse

import keras
import keras_tuner as kt

import kplaybook as kp


class DepthModel(kt.HyperModel):
    """MLP classifier; depth is scientific, the optimizer is nuisance."""

    def __init__(self, input_dim, num_classes, budget, units=128):
        super().__init__()
        self.input_dim, self.num_classes = input_dim, num_classes
        self.budget, self.units = budget, units

    def build(self, hp):
        model = keras.Sequential([keras.Input((self.input_dim,))])
        for _ in range(hp.Int("num_hidden_layers", 1, 3)):
            model.add(keras.layers.Dense(self.units, activation="relu"))
        model.add(keras.layers.Dense(self.num_classes, activation="softmax"))
        model.compile(
            optimizer=kp.spaces.adam(hp, budget=self.budget),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help='"digits" (offline) or a TFDS name')
    parser.add_argument("--trials-per-study", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-examples", type=int, default=None, help="cap on TFDS training examples")
    parser.add_argument("--directory", default="saved_studies")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    load_kwargs = {} if args.dataset == "digits" else {"max_examples": args.max_examples}
    (x, y), (x_val, y_val) = kp.datasets.load(args.dataset, **load_kwargs)
    num_classes = int(max(y.max(), y_val.max())) + 1

    tuner = kp.PlaybookTuner(
        DepthModel(x.shape[1], num_classes, budget=args.trials_per_study),
        objective="val_loss",
        scientific={"num_hidden_layers": [1, 2, 3]},
        trials_per_study=args.trials_per_study,
        search="quasi_random",
        seed=args.seed,
        directory=args.directory,
        project_name=f"depth_{args.dataset}",
    )
    tuner.search(
        x,
        y,
        validation_data=(x_val, y_val),
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
    )
    study = tuner.study()
    study.export()
    print(study)
    print(study.best_per_scientific().to_string(index=False))
    print(f"Study written to {study.directory}")


if __name__ == "__main__":
    main()
