"""During a search, Python's garbage collector scans only what the trainings create."""

import gc
import weakref

import keras
from conftest import mlp_build

import kplaybook as kp
from kplaybook.training import runner


class Cycle:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self):
        self.me = self


# Module-level: KerasTuner deep-copies the callbacks of every trial.
FROZEN = []
HOLDER = []


class RecordFreeze(keras.callbacks.Callback):
    """Records how many objects are frozen while each trial trains; drops HOLDER's object."""

    def on_train_begin(self, logs=None):
        FROZEN.append(gc.get_freeze_count())
        HOLDER.clear()  # the pre-search cycle becomes garbage mid-search


def test_a_search_freezes_survivors_and_unfreezes_them_at_its_end(tmp_path, digits):
    (x, y), (xv, yv) = digits
    gc.unfreeze()  # a user's process: nothing frozen before the search
    cycle = Cycle()
    alive = weakref.ref(cycle)
    HOLDER.append(cycle)
    del cycle
    FROZEN.clear()
    tuner = kp.QuasiRandomSearch(
        mlp_build,
        objective="val_loss",
        max_trials=2,
        seed=0,
        directory=str(tmp_path),
        project_name="gc",
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, callbacks=[RecordFreeze()], verbose=0)

    assert len(FROZEN) == 2
    assert all(count > 100_000 for count in FROZEN)  # TensorFlow's import, at least
    assert gc.get_freeze_count() == 0
    assert alive() is not None  # frozen during the search: not collected yet
    gc.collect()
    assert alive() is None  # unfrozen after it: collected as usual


def frozen(obj):
    """Whether `obj` is frozen: `gc.get_objects()` lists every generation but the permanent one."""
    return not any(o is obj for o in gc.get_objects())


def test_nothing_is_frozen_when_the_user_froze_first_or_disabled_the_collector():
    gc.unfreeze()
    gc.freeze()
    before = gc.get_freeze_count()
    with runner.collections_of_new_objects_only():
        garbage = [Cycle() for _ in range(10)]
        runner.freeze_survivors()
        # Not `== before`: an object frozen earlier may be freed meanwhile (by
        # another thread, e.g. pytest-xdist's), which lowers the count.
        assert gc.get_freeze_count() <= before
        assert not frozen(garbage) and not frozen(garbage[0])
    assert gc.get_freeze_count() <= before
    del garbage

    gc.unfreeze()
    gc.disable()
    try:
        with runner.collections_of_new_objects_only():
            runner.freeze_survivors()
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_nested_scopes_unfreeze_once_at_the_outermost_end():
    gc.unfreeze()
    with runner.collections_of_new_objects_only():
        outer = gc.get_freeze_count()
        assert outer > 0
        with runner.collections_of_new_objects_only():
            assert gc.get_freeze_count() >= outer
        assert gc.get_freeze_count() >= outer  # the inner scope did not unfreeze
    assert gc.get_freeze_count() == 0
