"""Is training unstable, and does warmup fix it? The playbook's LR and warmup sweeps.

1. `kp.lr_sweep` trains the same model briefly at each learning rate: lr*
   is the rate with the best final training loss, and the smallest rate
   that diverged or ended above its starting loss is the unstable one.
2. `kp.warmup_sweep` targets 10x that unstable rate (the playbook's "How to apply learning rate warmup",
   https://github.com/google-research/tuning_playbook#how-to-apply-learning-rate-warmup) and
   tries warmups of growing length: the shortest that makes it stable is
   the one to use.

The model is a residual ReLU MLP without normalisation whose hidden kernels
start at 4x He variance: a deliberately sharp start, so that warmup matters
on a small dataset. Swap in your own `build_model` (compiled with a float
learning rate).

Offline (default) it uses scikit-learn's digits; on Colab pass a TFDS name:

    python examples/stability.py                      # digits, offline
    python examples/stability.py --dataset mnist      # TFDS, needs internet
"""

import argparse
import os

import keras
import numpy as np
import pandas as pd

import kplaybook as kp


def make_builder(input_dim, num_classes, depth=8, width=64):
    def build_model():
        init = keras.initializers.VarianceScaling(
            scale=8.0, mode="fan_in", distribution="truncated_normal"
        )
        inputs = keras.Input((input_dim,))
        h = keras.layers.Dense(width, activation="relu", kernel_initializer=init)(inputs)
        for _ in range(depth - 1):
            branch = keras.layers.Dense(width, activation="relu", kernel_initializer=init)(h)
            h = keras.layers.Add()([h, branch])
        model = keras.Model(inputs, keras.layers.Dense(num_classes)(h))
        model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    return build_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help='"digits" (offline) or a TFDS name')
    parser.add_argument(
        "--max-examples", type=int, default=None, help="cap on TFDS training examples"
    )
    parser.add_argument("--steps", type=int, default=200, help="steps per learning rate")
    parser.add_argument("--warmups", default="10,100,300", help="warmup lengths to try")
    parser.add_argument("--max-train-steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="saved_studies/stability", help="where the plots go")
    args = parser.parse_args(argv)

    load_kwargs = {} if args.dataset == "digits" else {"max_examples": args.max_examples}
    (x, y), (x_val, y_val) = kp.datasets.load(args.dataset, **load_kwargs)
    x = x.reshape(len(x), -1).astype(np.float32)
    build_model = make_builder(x.shape[1], int(max(y.max(), y_val.max())) + 1)
    pd.set_option("display.width", 120)
    columns = ["initial_loss", "final_loss", "diverged", "stable"]

    rates = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
    sweep = kp.lr_sweep(build_model, (x, y), rates, steps=args.steps, seed=args.seed)
    print("Learning-rate sweep:")
    print(sweep.to_dataframe()[columns].to_string(float_format="{:.4g}".format))
    print(f"lr* = {sweep.best_lr}, unstable from {sweep.unstable_lr}")
    if sweep.unstable_lr is None:
        print("No rate was unstable: extend the grid upwards before a warmup sweep.")
        return 0

    target = 10 * sweep.unstable_lr
    warmups = [int(w) for w in args.warmups.split(",")]
    result = kp.warmup_sweep(
        build_model, (x, y), target, warmups, args.max_train_steps, seed=args.seed
    )
    print(f"\nWarmup sweep at {target:g} (10x the unstable rate), {result.steps} steps per run:")
    print(result.to_dataframe()[columns].to_string(float_format="{:.4g}".format))
    print(f"shortest stable warmup: {result.shortest_stable_warmup}")
    for note in result.notes:
        print("-", note)

    os.makedirs(args.out, exist_ok=True)
    sweep.plot().savefig(os.path.join(args.out, "lr_sweep.png"), dpi=100)
    result.plot().savefig(os.path.join(args.out, "warmup_sweep.png"), dpi=100)
    print(f"\nplots: {args.out}/lr_sweep.png, {args.out}/warmup_sweep.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
