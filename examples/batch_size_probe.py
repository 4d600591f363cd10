"""Which batch size? Probe throughput up to the first out-of-memory error.

The playbook's "Determining the feasible batch sizes and estimating training throughput":
https://github.com/google-research/tuning_playbook#determining-the-feasible-batch-sizes-and-estimating-training-throughput

Doubles the global batch size from 8, trains a fresh model for a few steps at
each size under `kp.distribute.StrategyWrapper()` (all GPUs when there are
several, batch norm synchronised), discards the warm-up steps and reports
the median step time, examples/s, the largest feasible size and the
recommended one: the largest that still raises throughput meaningfully.

    python examples/batch_size_probe.py                    # digits, offline (CPU or GPU)
    python examples/batch_size_probe.py --dataset mnist    # TFDS, on Colab

The same probe from the shell: `kplaybook probe examples/batch_size_probe.py:build_model`.
"""

import argparse
import functools

import keras
import tensorflow as tf

import kplaybook as kp

INPUT_DIM, NUM_CLASSES = 64, 10


def build_model(input_dim=None, num_classes=None):
    """An MLP with batch norm: a compiled keras.Model (the probe builds it under the strategy)."""
    model = keras.Sequential(
        [
            keras.Input((input_dim or INPUT_DIM,)),
            keras.layers.Dense(512),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(num_classes or NUM_CLASSES),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help='"digits" (offline) or a TFDS name')
    parser.add_argument("--max-examples", type=int, default=None, help="cap on TFDS examples")
    parser.add_argument("--max-batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--plot", default="batch_size_probe.png")
    parser.add_argument("--save", default="batch_size_probe.json")
    args = parser.parse_args(argv)

    load_kwargs = {} if args.dataset == "digits" else {"max_examples": args.max_examples}
    (x, y), _ = kp.datasets.load(args.dataset, **load_kwargs)
    input_dim, num_classes = x.shape[1], int(y.max()) + 1
    gpus = len(tf.config.list_physical_devices("GPU"))
    print(f"{gpus} GPU(s); probing global batch sizes 8..{args.max_batch_size}")
    # strategy=None: StrategyWrapper() (all GPUs when several); on a GPU each size
    # runs in a subprocess, so build_model is passed as a picklable partial.
    result = kp.distribute.probe_batch_sizes(
        functools.partial(build_model, input_dim, num_classes),
        (x, y),
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        max_batch_size=args.max_batch_size,
    )
    print(result.summary())
    result.plot().savefig(args.plot)
    result.save(args.save)
    print(f"Plot written to {args.plot}; result to {args.save}")


if __name__ == "__main__":
    main()
