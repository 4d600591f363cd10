"""Where kplaybook's rules come from: sections of the public Deep Learning Tuning Playbook.

Every finding, warning and docstring that rests on the playbook cites it
through `cite(key)`, by the section's title and its address in the public
playbook (https://github.com/google-research/tuning_playbook), so a user can
open what a rule rests on.

Example:
    >>> cite("gradient_clipping")
    'Deep Learning Tuning Playbook, "Gradient clipping": https://github.com/google-research/tuning_playbook#gradient-clipping'
"""

PLAYBOOK_URL = "https://github.com/google-research/tuning_playbook"

#: key -> (section title, anchor) in the playbook's README.
SECTIONS = {
    "batch_size": ("Choosing the batch size", "choosing-the-batch-size"),
    "feasible_batch_sizes": (
        "Determining the feasible batch sizes and estimating training throughput",
        "determining-the-feasible-batch-sizes-and-estimating-training-throughput",
    ),
    "batch_size_training_time": (
        "Choosing the batch size to minimize training time",
        "choosing-the-batch-size-to-minimize-training-time",
    ),
    "batch_size_retuning": (
        "Changing the batch size requires re-tuning most hyperparameters",
        "changing-the-batch-size-requires-re-tuning-most-hyperparameters",
    ),
    "input_pipeline": ("Optimizing the input pipeline", "optimizing-the-input-pipeline"),
    "initial_configuration": (
        "Choosing the initial configuration",
        "choosing-the-initial-configuration",
    ),
    "exploration_vs_exploitation": (
        "Exploration vs exploitation",
        "exploration-vs-exploitation",
    ),
    "incremental_tuning": (
        "A scientific approach to improving model performance",
        "a-scientific-approach-to-improving-model-performance",
    ),
    "incremental_tuning_strategy": (
        "The incremental tuning strategy",
        "the-incremental-tuning-strategy",
    ),
    "round_goal": (
        "Choosing the goal for the next round of experiments",
        "choosing-the-goal-for-the-next-round-of-experiments",
    ),
    "scientific_nuisance_fixed": (
        "Identifying scientific, nuisance, and fixed hyperparameters",
        "identifying-scientific-nuisance-and-fixed-hyperparameters",
    ),
    "creating_studies": ("Creating a set of studies", "creating-a-set-of-studies"),
    "study_budget": (
        "Striking a balance between informative and affordable experiments",
        "striking-a-balance-between-informative-and-affordable-experiments",
    ),
    "extracting_insight": (
        "Extracting insight from experimental results",
        "extracting-insight-from-experimental-results",
    ),
    "search_space_boundaries": (
        "Identifying bad search space boundaries",
        "identifying-bad-search-space-boundaries",
    ),
    "sampling_enough": (
        "Not sampling enough points in the search space",
        "not-sampling-enough-points-in-the-search-space",
    ),
    "training_curves": ("Examining the training curves", "examining-the-training-curves"),
    "isolation_plots": (
        "Detecting whether a change is useful with isolation plots",
        "detecting-whether-a-change-is-useful-with-isolation-plots",
    ),
    "adopting_change": (
        "Determining whether to adopt a training pipeline change or hyperparameter configuration",
        "determining-whether-to-adopt-a-training-pipeline-change-or-hyperparameter-configuration",
    ),
    "bayesian_optimization": ("After exploration concludes", "after-exploration-concludes"),
    "how_long_to_train": (
        "Deciding how long to train when training is not compute-bound",
        "deciding-how-long-to-train-when-training-is-not-compute-bound",
    ),
    "compute_bound_training": (
        "Deciding how long to train when training is compute-bound",
        "deciding-how-long-to-train-when-training-is-compute-bound",
    ),
    "checkpoint_selection": (
        "Saving checkpoints and retrospectively selecting the best checkpoint",
        "saving-checkpoints-and-retrospectively-selecting-the-best-checkpoint",
    ),
    "tracking": ("Setting up experiment tracking", "setting-up-experiment-tracking"),
    "batch_norm": (
        "Batch normalization implementation details",
        "batch-normalization-implementation-details",
    ),
    "lr_decay_default": (
        "Which learning rate decay should I use as a default?",
        "which-learning-rate-decay-should-i-use-as-a-default",
    ),
    "adam_hyperparameters": (
        "How should Adam's hyperparameters be tuned?",
        "how-should-adams-hyperparameters-be-tuned",
    ),
    "quasi_random_search": (
        "Why use quasi-random search instead of more sophisticated black box optimization "
        "algorithms during the exploration phase of tuning?",
        "why-use-quasi-random-search-instead-of-more-sophisticated-black-box-optimization-"
        "algorithms-during-the-exploration-phase-of-tuning",
    ),
    "instability": (
        "How can optimization failures be debugged and mitigated?",
        "how-can-optimization-failures-be-debugged-and-mitigated",
    ),
    "unstable_workloads": ("Identifying unstable workloads", "identifying-unstable-workloads"),
    "instability_fixes": (
        "Potential fixes for common instability patterns",
        "potential-fixes-for-common-instability-patterns",
    ),
    "warmup": ("How to apply learning rate warmup", "how-to-apply-learning-rate-warmup"),
    "gradient_clipping": ("Gradient clipping", "gradient-clipping"),
}


def url(key):
    """The address of section `key` in the public playbook."""
    return f"{PLAYBOOK_URL}#{SECTIONS[key][1]}"


def cite(key):
    """A citation of section `key`: ``Deep Learning Tuning Playbook, "<title>": <url>``.

    Raises:
        KeyError: `key` is not one of `SECTIONS`.
    """
    title, _ = SECTIONS[key]
    return f'Deep Learning Tuning Playbook, "{title}": {url(key)}'


def mention(key):
    """The section's title for the end of a sentence: ``(playbook: "<title>")``; its URL is `url(key)`."""
    return f'(playbook: "{SECTIONS[key][0]}")'


def see(key):
    """A parenthesised citation for the end of a sentence: ``(see "<title>", <url>)``."""
    title, _ = SECTIONS[key]
    return f'(see "{title}", {url(key)})'
