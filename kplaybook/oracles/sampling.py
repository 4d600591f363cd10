"""Map unit-cube points onto a KerasTuner search space.

Both samplers walk the space in declaration order, so a parent
hyperparameter gets its value before the conditional ones below it, and ask
each hyperparameter's own ``prob_to_value`` for the value: log-scaled
dimensions are uniform in log space, ``Int``/``Float`` steps are honoured and
a ``Choice`` gives each value equal mass.
"""

import json
import warnings
import zlib

import numpy as np
from keras_tuner.engine import hyperparameters as hp_module
from scipy.stats import qmc

from kplaybook.errors import PlaybookWarning

# Points of the scrambled sequence skipped at the start. Scrambling already
# removes the unscrambled sequence's point at the origin; skipping a few more
# follows the playbook's reference implementation and costs nothing, since
# the Halton engine fast-forwards in O(1).
DEFAULT_SKIP = 16


def dimension_key(hp):
    """A stable key for one hyperparameter: its name plus its conditions."""
    if not hp.conditions:
        return hp.name
    conditions = [condition.get_config() for condition in hp.conditions]
    return hp.name + "|" + json.dumps(conditions, sort_keys=True)


def plain(value):
    """Cast numpy scalars to Python ones: KerasTuner's JSON and gRPC need them."""
    return value.item() if isinstance(value, np.generic) else value


def stream_seed(seed, *stream):
    """A reproducible 32-bit seed for one sub-stream (a scientific value, a slot...)."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


def _pseudo_random_unit(seed, index, key):
    rng = np.random.default_rng([seed, index, zlib.crc32(key.encode())])
    return float(rng.random())


class _SpaceSampler:
    """Common walk over a search space; subclasses supply the unit coordinates."""

    def __init__(self, seed):
        self.seed = int(seed)

    def _coordinates(self, tunable, index):
        raise NotImplementedError

    def values(self, space, index, overrides=None):
        """Hyperparameter values for point `index` of this sampler's sequence.

        Args:
            space: a `keras_tuner.HyperParameters` search space.
            index: int, the point's position in the sequence (0-based).
            overrides: optional dict name -> value set as given (scientific
                values); those hyperparameters take no dimension.

        Returns:
            A dict of the active hyperparameters' values, as plain Python
            types.
        """
        overrides = overrides or {}
        tunable = [
            hp
            for hp in space.space
            if not isinstance(hp, hp_module.Fixed) and hp.name not in overrides
        ]
        coordinates = self._coordinates(tunable, index)
        hps = hp_module.HyperParameters()
        for hp in space.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            if hp.name in overrides:
                value = overrides[hp.name]
            elif isinstance(hp, hp_module.Fixed):
                value = hp.value
            else:
                value = hp.prob_to_value(coordinates[dimension_key(hp)])
            hps.values[hp.name] = plain(value)
        return hps.values


class QuasiRandomSampler(_SpaceSampler):
    """Scrambled Halton points (`scipy.stats.qmc.Halton`) over a search space.

    The number of dimensions is fixed the first time points are drawn: one
    dimension per tunable hyperparameter then declared, conditional ones
    included (an inactive conditional hyperparameter's coordinate is simply
    unused, so activity never shifts the other dimensions). A hyperparameter
    that appears only later cannot join the sequence without breaking its
    low-discrepancy property; it is sampled pseudo-randomly (reproducibly,
    from the seed, the point index and its name) and a warning says so.

    Args:
        seed: int, the scrambling seed (0 is a seed).
        skip: int, initial points of the sequence to skip.
        dimensions: optional list of dimension keys, when restoring state.
    """

    def __init__(self, seed, skip=DEFAULT_SKIP, dimensions=None):
        super().__init__(seed)
        self.skip = int(skip)
        self.dimensions = list(dimensions) if dimensions is not None else None
        self._engine = None
        self._next_index = None
        self._last = None
        self._warned = set()

    def unit_point(self, index):
        """Point `index` of the scrambled sequence (after the skipped ones), in [0, 1)^d."""
        if not self.dimensions:
            return np.zeros(0)
        # Paired nested studies ask for the same point once per scientific
        # value in turn: serve a repeat from memory instead of rebuilding the
        # scrambled engine (~0.6 ms each).
        if self._last is not None and self._last[0] == index:
            return self._last[1].copy()
        if self._engine is None or self._next_index != index:
            self._engine = qmc.Halton(
                d=len(self.dimensions), scramble=True, seed=self.seed
            )
            self._engine.fast_forward(self.skip + index)
        self._next_index = index + 1
        point = self._engine.random(1)[0]
        self._last = (index, point)
        return point.copy()

    def _coordinates(self, tunable, index):
        if self.dimensions is None:
            self.dimensions = [dimension_key(hp) for hp in tunable]
        coordinates = dict(zip(self.dimensions, self.unit_point(index), strict=True))
        for hp in tunable:
            key = dimension_key(hp)
            if key in coordinates:
                continue
            if key not in self._warned:
                self._warned.add(key)
                warnings.warn(
                    f"Hyperparameter {hp.name!r} was declared after the "
                    "quasi-random sequence started, so it is sampled "
                    "pseudo-randomly; declare it in build() before the "
                    "search starts to include it in the sequence.",
                    PlaybookWarning,
                    stacklevel=2,
                )
            coordinates[key] = _pseudo_random_unit(self.seed, index, key)
        return coordinates

    def get_state(self):
        return {"seed": self.seed, "skip": self.skip, "dimensions": self.dimensions}

    @classmethod
    def from_state(cls, state):
        return cls(state["seed"], state["skip"], state["dimensions"])


class PseudoRandomSampler(_SpaceSampler):
    """Independent uniform coordinates, reproducible from (seed, index, name)."""

    def _coordinates(self, tunable, index):
        return {
            dimension_key(hp): _pseudo_random_unit(self.seed, index, dimension_key(hp))
            for hp in tunable
        }

    def get_state(self):
        return {"seed": self.seed}

    @classmethod
    def from_state(cls, state):
        return cls(state["seed"])
