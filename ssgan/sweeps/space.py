"""Search spaces and Optuna studies: what ``conf/search/`` describes, checked up front.

A space mirrors the training config: ``space.train.lr: {type: float, low, high, log}``
names the key ``train.lr`` and the distribution its values are drawn from. Every leaf
is checked against the composed training config before anything is written: the key
must exist, the range must not be empty, bounds must be numbers, and both ends (every
choice) must pass :func:`ssgan.config_checks.validate_train_config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.util
import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ssgan.config import PrunerConfig, SearchConfig
from ssgan.config_checks import (
    SEARCH_CHOICES,
    SEARCH_RANGES,
    check_table,
    validate_train_config,
)
from ssgan.errors import ConfigError, first_line

DISTRIBUTIONS = ("float", "int", "categorical")
LEAF_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
# Every key a search config has (the schema's): anything else is a typo that would
# otherwise be ignored and start a new study.
SEARCH_KEYS = tuple(f.name for f in dataclasses.fields(SearchConfig))
PRUNER_KEYS = tuple(f.name for f in dataclasses.fields(PrunerConfig))
# Keys of the search config that a same-named study may change without becoming another
# study: the budget can grow; where it is stored and how many workers run it do not
# change what it is.
_NOT_IDENTITY = ("n_trials", "storage", "workers", "threads_per_worker")
# What a leaf of search.space becomes, by its type.
Distribution = (
    optuna.distributions.FloatDistribution
    | optuna.distributions.IntDistribution
    | optuna.distributions.CategoricalDistribution
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Param:
    """One searched key and its distribution."""

    key: str  # dotted training config key, e.g. "train.lr"
    distribution: Distribution

    def corner_values(self) -> list[Any]:
        """The values that bound what a trial can get (both ends, or every choice)."""
        dist = self.distribution
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            return list(dist.choices)
        return [dist.low, dist.high]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _leaves(node: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(node, dict):
        raise ConfigError(
            f"search.space.{path}: expected a mapping such as "
            "{type: float, low: 0.0001, high: 0.001}, got "
            f"{node!r}"
        )
    if "type" in node:
        return [(path, node)]
    if not node:
        raise ConfigError(
            f"search.space.{path or '<root>'}: empty; name at least one key to search"
        )
    found = []
    for key, child in node.items():
        found.extend(_leaves(child, f"{path}.{key}" if path else str(key)))
    return found


def _distribution(key: str, spec: dict[str, Any]) -> Distribution:
    where = f"search.space.{key}"
    kind = spec.get("type")
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"{where}.type={kind!r} is not a distribution: allowed {', '.join(DISTRIBUTIONS)}"
        )
    extra = sorted(set(spec) - LEAF_KEYS[kind])
    if extra:
        raise ConfigError(
            f"{where}: unknown key '{extra[0]}' for type {kind}: allowed "
            f"{', '.join(sorted(LEAF_KEYS[kind]))}"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices: empty or missing; give a non-empty list of values")
        if any(isinstance(c, dict | list) for c in choices):
            raise ConfigError(
                f"{where}.choices: every choice must be a single value (number, text, bool)"
            )
        return optuna.distributions.CategoricalDistribution(choices)
    for bound in ("low", "high"):
        if bound not in spec:
            raise ConfigError(f"{where}.{bound} is missing: a {kind} range needs low and high")
        if not _is_number(spec[bound]):
            raise ConfigError(f"{where}.{bound}={spec[bound]!r} is not a number")
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
    if not low < high:
        raise ConfigError(f"{where}: empty range low={low} high={high}; low must be below high")
    if log and low <= 0:
        raise ConfigError(f"{where}.low={low}: a log range needs low > 0")
    if step is not None and (not _is_number(step) or step <= 0):
        raise ConfigError(f"{where}.step={step!r} must be a positive number")
    if log and step is not None:
        raise ConfigError(f"{where}: log and step cannot be combined (Optuna samples either)")
    if kind == "int":
        for name, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ConfigError(f"{where}.{name}={value!r} is not an integer (type: int)")
        return optuna.distributions.IntDistribution(low, high, log=log, step=step or 1)
    return optuna.distributions.FloatDistribution(float(low), float(high), log=log, step=step)


def parse_space(space: DictConfig | dict[str, Any]) -> list[Param]:
    """The space's leaves as Params; ConfigError (one line) for any malformed leaf."""
    plain = OmegaConf.to_container(space, resolve=True) if isinstance(space, DictConfig) else space
    if not plain:
        raise ConfigError("search.space is empty: name at least one training key to search")
    return [Param(key, _distribution(key, spec)) for key, spec in _leaves(plain, "")]


def with_values(base: DictConfig, values: dict[str, Any]) -> DictConfig:
    """A copy of the training config with dotted keys set (types checked by the schema)."""
    cfg = base.copy()
    for key, value in values.items():
        try:
            OmegaConf.update(cfg, key, value, merge=False)
        except OmegaConfBaseException as err:
            msg = first_line(err)
            raise ConfigError(f"search.space.{key}: value {value!r} does not fit: {msg}") from err
    return cfg


def check_against(params: list[Param], base: DictConfig) -> None:
    """Every searched key exists in the training config; every corner value is valid."""
    for param in params:
        current = OmegaConf.select(base, param.key, default="__missing__")
        if current == "__missing__" or isinstance(current, DictConfig):
            raise ConfigError(
                f"search.space: unknown key '{param.key}': not a setting of the training config "
                "(`python -m ssgan.train --cfg job` lists every key)"
            )
        for value in param.corner_values():
            try:
                validate_train_config(with_values(base, {param.key: value}))
            except ConfigError as err:
                raise ConfigError(
                    f"search.space.{param.key}: {value!r} cannot be trained: {err}"
                ) from err


def base_values(params: list[Param], base: DictConfig) -> dict[str, Any]:
    """The base config's own values of the searched keys (the baseline trial)."""
    values = {p.key: OmegaConf.select(base, p.key) for p in params}
    for param in params:
        value = values[param.key]
        if not param.distribution._contains(param.distribution.to_internal_repr(value)):
            raise ConfigError(
                f"search.baseline=true but the base value {param.key}={value} is outside "
                "search.space; widen the space or set search.baseline=false"
            )
    return values


def enqueued_values(search: SearchConfig, params: list[Param]) -> list[dict[str, Any]]:
    """``search.enqueue`` entries as {dotted key: value}; keys must be searched keys."""
    known = {p.key: p for p in params}
    trials = []
    for i, entry in enumerate(search.enqueue):
        if not isinstance(entry, dict):
            raise ConfigError(
                f"search.enqueue[{i}]: expected a mapping like {{train: {{lr: 0.001}}}}"
            )
        flat = _flatten(entry)
        for key, value in flat.items():
            if key not in known:
                raise ConfigError(
                    f"search.enqueue[{i}]: '{key}' is not in search.space "
                    f"(searched: {', '.join(known)})"
                )
            dist = known[key].distribution
            try:
                inside = dist._contains(dist.to_internal_repr(value))
            except (TypeError, ValueError):
                inside = False
            if not inside:
                raise ConfigError(f"search.enqueue[{i}]: {key}={value!r} is outside search.space")
        trials.append(flat)
    return trials


def _flatten(node: dict[str, Any], path: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        dotted = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict):
            out.update(_flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def _refuse_unknown_keys(node: DictConfig, known: tuple[str, ...], prefix: str) -> None:
    for key in map(str, node):
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {prefix}.{close[0]}? " if close else ""
            raise ConfigError(
                f"{prefix}.{key} is not a search setting: {hint}the keys are {', '.join(known)}"
            )


def check_search(search: DictConfig) -> None:
    """Budget, sampler and pruner settings (the space is checked by parse_space); a key
    that is not one of them is refused by name."""
    _refuse_unknown_keys(search, SEARCH_KEYS, "search")
    _refuse_unknown_keys(search.pruner, PRUNER_KEYS, "search.pruner")
    check_table(OmegaConf.create({"search": search}), SEARCH_CHOICES, SEARCH_RANGES)
    if not search.name or not all(c.isalnum() or c in "-_" for c in str(search.name)):
        raise ConfigError(
            f"search.name={search.name!r}: give a name of letters, digits, '-' or '_' "
            "(it names the study)"
        )


def check_tune_config(cfg: DictConfig) -> None:
    """A composed ``conf/tune.yaml``: its search settings, and the training config the
    trials start from (ConfigError, one line)."""
    check_search(cfg.search)
    validate_train_config(OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "search"]))


# Samplers that need a package Optuna does not install: (module, what to install).
SAMPLER_PACKAGES = {
    "cmaes": ("cmaes", "pip install 'ssgan[cmaes]' (the cmaes package)"),
    "gp": ("torch", "pip install 'ssgan[gp]' (PyTorch, which Optuna's GPSampler runs on)"),
}


def check_sampler_installed(sampler: str) -> None:
    """ConfigError (one line) when ``sampler`` needs a package that is not installed."""
    if sampler in SAMPLER_PACKAGES:
        module, install = SAMPLER_PACKAGES[sampler]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"search.sampler={sampler} needs the {module} package, which is not "
                f"installed: {install}, or choose another sampler"
            )


def make_sampler(search: SearchConfig, offset: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded with ``search.seed + offset`` (the trial's number:
    trial k draws from its own stream, whichever worker runs it). ``qmc`` keeps
    ``search.seed``: its sequence is one stream, trial k takes its k-th point."""
    seed = search.seed + offset
    startup = search.n_random_trials
    samplers = optuna.samplers
    if search.sampler == "random":
        return samplers.RandomSampler(seed=seed)
    if search.sampler == "cmaes":
        return samplers.CmaEsSampler(seed=seed, n_startup_trials=startup)
    if search.sampler == "gp":
        return samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if search.sampler == "qmc":
        with warnings.catch_warnings():  # "experimental" since Optuna 3.0, on every trial
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=search.seed)
    if search.sampler == "nsga2":
        return samplers.NSGAIISampler(seed=seed, population_size=max(2, startup))
    return samplers.TPESampler(seed=seed, n_startup_trials=startup)


def make_pruner(pruner: PrunerConfig) -> optuna.pruners.BasePruner:
    """The configured pruner; steps are 1-based epochs, the value validation accuracy."""
    name = pruner.name
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=pruner.n_startup_trials, n_warmup_steps=pruner.n_warmup_steps
        )
    if name == "percentile":
        return optuna.pruners.PercentilePruner(
            pruner.percentile,
            n_startup_trials=pruner.n_startup_trials,
            n_warmup_steps=pruner.n_warmup_steps,
        )
    if name == "threshold":
        return optuna.pruners.ThresholdPruner(
            lower=pruner.lower, n_warmup_steps=pruner.n_warmup_steps
        )
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=pruner.min_resource, reduction_factor=pruner.reduction_factor
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=pruner.min_resource, reduction_factor=pruner.reduction_factor
        )
    return optuna.pruners.NopPruner()


def study_name(search: SearchConfig, base_overrides: list[str]) -> str:
    """``<search name>-<hash>``: the same command finds the same study again; another
    space, pruner or set of training overrides is another study. ``n_trials`` is left
    out, so a finished search can be given a bigger budget and continue."""
    identity = dataclasses.asdict(search)
    for key in _NOT_IDENTITY:
        identity.pop(key, None)
    text = json.dumps({"search": identity, "overrides": sorted(base_overrides)}, sort_keys=True)
    return f"{search.name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def format_value(value: Any) -> str:
    """A value as a Hydra override writes it (floats with full precision)."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def suggest(trial: optuna.Trial, param: Param) -> Any:
    """``trial``'s value for ``param``: drawn by the study's sampler, or the value an
    enqueued or retried trial already carries."""
    dist = param.distribution
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(param.key, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(param.key, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(param.key, dist.low, dist.high, step=dist.step, log=dist.log)
