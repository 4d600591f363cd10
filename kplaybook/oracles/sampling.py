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

#: Dimensions of the scrambled sequence held back for hyperparameters declared
#: after the first point (a later trial's build or fit, a loop over
#: `hp.Int("num_layers")`): each new name takes the next spare dimension and
#: joins the sequence. Spare dimensions cost nothing until used: scipy draws
#: each dimension's scrambling in order, so the first dimensions' points are
#: the same with or without them.
SPARE_DIMENSIONS = 16

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


class SequenceDimensions:
    """The dimensions of a study's quasi-random sequence: a key per hyperparameter, and spares.

    Fixed when the first point is drawn: one dimension per tunable
    hyperparameter then declared, conditional ones included (an inactive
    conditional hyperparameter's coordinate is simply unused, so activity
    never shifts the other dimensions), plus `SPARE_DIMENSIONS`. A name that
    appears later takes the next spare. Every sampler of a study shares one
    `SequenceDimensions`, so a late name has the same dimension in all of
    them (and stays paired across scientific values).

    Args:
        keys: the dimension keys in order, when restoring state.
        total: the sequence's number of dimensions, spares included; studies
            saved before spare dimensions existed have none (their points
            stay the same on resume).
    """

    def __init__(self, keys=None, total=None):
        self.keys = None if keys is None else list(keys)
        self.total = total if total is not None or keys is None else len(self.keys)

    def fix(self, keys):
        """Fixes the dimensions to `keys` plus the spares, unless they are fixed already."""
        if self.keys is None:
            self.keys = list(keys)
            self.total = len(self.keys) + SPARE_DIMENSIONS

    def add(self, key):
        """Gives `key` a dimension (a spare one if new); False when no spare is left."""
        if key in self.keys:
            return True
        if len(self.keys) < self.total:
            self.keys.append(key)
            return True
        return False

    def get_state(self):
        return {"dimensions": self.keys, "total": self.total}

    @classmethod
    def from_state(cls, state):
        return cls(state.get("dimensions"), state.get("total"))


class QuasiRandomSampler(_SpaceSampler):
    """Scrambled Halton points (`scipy.stats.qmc.Halton`) over a search space.

    The sequence has the dimensions of a `SequenceDimensions`: every
    hyperparameter declared when the first point is drawn, then each later
    name in a spare dimension, so it is sampled quasi-randomly from the point
    where it appears. Only when the spares run out is a name sampled
    pseudo-randomly (reproducibly, from the seed, the point index and its
    name), with a warning.

    Args:
        seed: int, the scrambling seed (0 is a seed).
        skip: int, initial points of the sequence to skip.
        dimensions: a `SequenceDimensions` shared with the study's other
            samplers (a new one by default).
    """

    def __init__(self, seed, skip=DEFAULT_SKIP, dimensions=None):
        super().__init__(seed)
        self.skip = int(skip)
        self.dimensions = dimensions if dimensions is not None else SequenceDimensions()
        self._engine = None
        self._engine_total = None
        self._next_index = None
        self._last = None
        self._warned = set()

    def unit_point(self, index):
        """Point `index` of the scrambled sequence (after the skipped ones), in [0, 1)^total."""
        total = self.dimensions.total
        if not total:
            return np.zeros(0)
        # Paired nested studies ask for the same point once per scientific
        # value in turn: serve a repeat from memory instead of rebuilding the
        # scrambled engine (~0.6 ms each).
        if self._last is not None and self._last[0] == index:
            return self._last[1].copy()
        if self._engine is None or self._next_index != index or self._engine_total != total:
            self._engine = qmc.Halton(d=total, scramble=True, seed=self.seed)
            self._engine.fast_forward(self.skip + index)
            self._engine_total = total
        self._next_index = index + 1
        point = self._engine.random(1)[0]
        self._last = (index, point)
        return point.copy()

    def _coordinates(self, tunable, index):
        self.dimensions.fix([dimension_key(hp) for hp in tunable])
        placed = {dimension_key(hp): self.dimensions.add(dimension_key(hp)) for hp in tunable}
        coordinates = dict(zip(self.dimensions.keys, self.unit_point(index)))
        for key, ok in placed.items():
            if ok:
                continue
            if key not in self._warned:
                self._warned.add(key)
                warnings.warn(
                    f"Hyperparameter {key.split('|')[0]!r} appeared after all "
                    f"{SPARE_DIMENSIONS} spare dimensions of the quasi-random sequence were "
                    "taken, so it is sampled pseudo-randomly; declare it in build() before "
                    "the search starts to include it in the sequence.",
                    PlaybookWarning,
                    stacklevel=2,
                )
            coordinates[key] = _pseudo_random_unit(self.seed, index, key)
        return coordinates

    def get_state(self):
        return {"seed": self.seed, "skip": self.skip, **self.dimensions.get_state()}

    @classmethod
    def from_state(cls, state):
        return cls(state["seed"], state["skip"], SequenceDimensions.from_state(state))


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
