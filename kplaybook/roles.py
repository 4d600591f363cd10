"""Scientific, nuisance and fixed hyperparameters.

The playbook's "Identifying scientific, nuisance, and fixed hyperparameters"
(https://github.com/google-research/tuning_playbook#identifying-scientific-nuisance-and-fixed-hyperparameters).

For one experimental goal every hyperparameter has one role: *scientific*
(its effect is what the study measures), *fixed* (held constant; a caveat on
the conclusions) or *nuisance* (optimised away so the comparison is fair).
This module checks a role assignment against the playbook's rules.
"""

import itertools
import re
import warnings

from keras_tuner.engine import hyperparameters as hp_module

from kplaybook.citations import mention
from kplaybook.errors import PlaybookWarning
from kplaybook.errors import RoleError
from kplaybook.fatal_errors import fatal
from kplaybook.records.files import plain

# Rule 9: optimizer hyperparameters (learning rate, momentum, Adam's betas and
# epsilon, the schedule) are nuisance hyperparameters. Matched on the last
# segment of a name, so "adam/learning_rate" counts too.
_OPTIMIZER_NAME = re.compile(
    r"^(lr|learning_rate|base_lr|peak_lr|momentum|one_minus_momentum|"
    r"beta_?1|beta_?2|one_minus_beta_?1|one_minus_beta_?2|epsilon|eps|"
    r"warmup_steps|decay_steps|lr_decay|decay_factor)$"
)

_PLAIN_TYPES = (bool, int, float, str)


def _last_segment(name):
    return re.split(r"[/.]", name)[-1]


def is_optimizer_hyperparameter(name):
    """True when `name` looks like an optimizer hyperparameter (learning rate, betas, ...)."""
    return bool(_OPTIMIZER_NAME.match(_last_segment(name)))


def is_batch_size(name):
    """True when `name` names the batch size."""
    return _last_segment(name) == "batch_size"


def scientific_cells(scientific):
    """The Cartesian product of the scientific values, as a list of dicts.

    Example:
        >>> scientific_cells({"layers": [1, 2], "act": ["relu"]})
        [{'layers': 1, 'act': 'relu'}, {'layers': 2, 'act': 'relu'}]
    """
    names = list(scientific)
    return [dict(zip(names, combo)) for combo in itertools.product(*scientific.values())]


def check_role_arguments(scientific, fixed):
    """Check `scientific` and `fixed` before the search space is known.

    Returns:
        `(scientific, fixed)` as plain dicts (value lists as lists).

    Raises:
        RoleError: a malformed argument, an empty value list, a name both
            scientific and fixed, or a value KerasTuner cannot store.
    """
    scientific = {} if scientific is None else scientific
    fixed = {} if fixed is None else fixed
    if not isinstance(scientific, dict):
        raise fatal(
            RoleError,
            f"scientific must be a dict of name -> list of values, got {type(scientific).__name__}.",
        )
    if not isinstance(fixed, dict):
        raise fatal(
            RoleError, f"fixed must be a dict of name -> value, got {type(fixed).__name__}."
        )
    checked = {}
    for name, values in scientific.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise fatal(
                RoleError,
                f"scientific[{name!r}] must be a list of the values to compare, got {values!r}.",
            )
        values = [plain(v) for v in values]
        if not values:
            raise fatal(
                RoleError,
                f"scientific[{name!r}] is an empty list; give at least one value to compare.",
            )
        if len(set(map(repr, values))) != len(values):
            raise fatal(RoleError, f"scientific[{name!r}] lists a value twice: {values!r}.")
        for value in values:
            _check_plain(f"scientific[{name!r}]", value)
        checked[name] = values
    fixed = {name: plain(value) for name, value in fixed.items()}
    for name, value in fixed.items():
        _check_plain(f"fixed[{name!r}]", value)
    both = sorted(set(checked) & set(fixed))
    if both:
        raise fatal(
            RoleError,
            f"{both[0]!r} is both scientific and fixed; give each hyperparameter one role.",
        )
    for name in list(checked) + list(fixed):
        if is_optimizer_hyperparameter(name):
            role = "scientific" if name in checked else "fixed"
            warnings.warn(
                f"{name!r} is an optimizer hyperparameter made {role}; the playbook says "
                "optimizer hyperparameters are nuisance: leave it out of scientific/fixed so "
                f"each study tunes it {mention('scientific_nuisance_fixed')}.",
                PlaybookWarning,
                stacklevel=3,
            )
    return checked, dict(fixed)


def _check_plain(label, value):
    if not isinstance(value, _PLAIN_TYPES):
        raise fatal(
            RoleError,
            f"{label} is {value!r} of type {type(value).__name__}; use a bool, int, "
            "float or str, the types KerasTuner can store.",
        )


def _fits(hp, value):
    if isinstance(hp, hp_module.Fixed):
        return value == hp.value
    if isinstance(hp, hp_module.Boolean):
        return isinstance(value, bool)
    if isinstance(hp, hp_module.Choice):
        return value in hp.values
    if isinstance(hp, (hp_module.Int, hp_module.Float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return hp.min_value <= value <= hp.max_value
    return True


def _describe(hp):
    config = hp.get_config()
    config.pop("conditions", None)
    config.pop("name", None)
    return f"{type(hp).__name__}({hp.name!r}, {config})"


def undeclared(space, scientific, fixed):
    """The scientific and fixed names `space` does not declare: [(role, name)]."""
    declared = {hp.name for hp in space.space}
    return [
        (role, name)
        for role, names in (("scientific", scientific), ("fixed", fixed))
        for name in names
        if name not in declared
    ]


def undeclared_error(missing, declared_names, where="build(hp) or HyperModel.fit"):
    """The `RoleError` for role names no code declares (`missing` from `undeclared`)."""
    role, name = missing[0]
    return fatal(
        RoleError,
        f"{role} names {name!r}, which {where} does not declare (declared: "
        f"{sorted(declared_names)}); fix the name or declare it.",
    )


def apply_roles(space, scientific, fixed, register_undeclared=False):
    """Check roles against the declared space and return the space to search.

    Fixed hyperparameters are re-registered as `hp.Fixed`; scientific ones
    keep their declaration (the oracle sets their values per study). Any
    other tunable hyperparameter is a nuisance hyperparameter.

    Args:
        space: the `HyperParameters` that `build(hp)` (and `HyperModel.fit`)
            declared.
        scientific: dict name -> list of values.
        fixed: dict name -> value.
        register_undeclared: register the scientific and fixed names `space`
            does not declare (a scientific one as a `Choice` of its values, a
            fixed one as `Fixed`), so that code declaring them later
            (`HyperModel.fit`, `run_trial`) reads the trial's value from its
            first trial on.

    Returns:
        A new `HyperParameters`.

    Raises:
        RoleError: a value outside its declaration, a scientific
            hyperparameter declared as `hp.Fixed`, or a batch size left as a
            nuisance hyperparameter.
    """
    declared = {}
    for hp in space.space:
        declared.setdefault(hp.name, []).append(hp)
    for name, values in scientific.items():
        for hp in declared.get(name, []):
            if isinstance(hp, hp_module.Fixed):
                raise fatal(
                    RoleError,
                    f"Scientific hyperparameter {name!r} is declared as hp.Fixed in "
                    "build(hp); declare it with hp.Choice/hp.Int so its values can vary.",
                )
            for value in values:
                if not _fits(hp, value):
                    raise fatal(
                        RoleError,
                        f"Scientific value {value!r} of {name!r} is outside its "
                        f"declaration {_describe(hp)}; widen the declaration or "
                        "drop the value.",
                    )
    for name, value in fixed.items():
        for hp in declared.get(name, []):
            if not isinstance(hp, hp_module.Fixed) and not _fits(hp, value):
                raise fatal(
                    RoleError,
                    f"Fixed value {value!r} of {name!r} is outside its declaration "
                    f"{_describe(hp)}; widen the declaration or change the value.",
                )
    for name, hps in declared.items():
        if name in scientific or name in fixed or not is_batch_size(name):
            continue
        if any(not isinstance(hp, hp_module.Fixed) for hp in hps):
            raise fatal(
                RoleError,
                f"{name!r} is a nuisance hyperparameter, but the playbook says batch size is "
                f"not tuned for validation error: pass fixed={{{name!r}: 64}} (your batch "
                f"size), or scientific={{{name!r}: [...]}} to study it "
                f"{mention('batch_size_retuning')}.",
            )
    result = hp_module.HyperParameters()
    for hp in space.space:
        if hp.name in fixed:
            hp = hp_module.Fixed(hp.name, fixed[hp.name], conditions=hp.conditions)
        result.merge([hp])
    if register_undeclared:
        for role, name in undeclared(space, scientific, fixed):
            if role == "fixed":
                result.merge([hp_module.Fixed(name, fixed[name])])
            else:
                values = scientific[name]
                ordered = all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
                )
                result.merge([hp_module.Choice(name, values, ordered=ordered)])
    return result


def nuisance_names(space, scientific):
    """Names of the tunable hyperparameters in `space` that are not scientific."""
    names = []
    for hp in space.space:
        if isinstance(hp, hp_module.Fixed) or hp.name in scientific:
            continue
        if hp.name not in names:
            names.append(hp.name)
    return names
