"""Hyperparameters for RL training, rl-zoo style: ``config/rl/<algo>.yml`` with one block per env id
merged over a ``default`` block. Values are plain YAML (numbers, strings, lists, mappings): nothing is
evaluated as code. Unknown keys are refused with the file, the key and the allowed keys.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ir_robot.config import read_yaml
from ir_robot.core.errors import ConfigError
from ir_robot.paths import data_path

ALGOS = ("ppo", "sac")
#: keys the trainer reads itself (everything else goes to the algorithm's constructor)
RUN_KEYS = (
    "n_timesteps",
    "n_envs",
    "normalize",
    "env_kwargs",
    "eval_freq",
    "eval_episodes",
    "checkpoint_freq",
    "policy",
)
#: activation functions a policy_kwargs block may name (a string is looked up here, never evaluated)
ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu")


def algorithm_class(algo: str) -> Any:
    """The stable-baselines3 class for ``algo`` (a clear error listing the choices otherwise)."""
    if algo not in ALGOS:
        raise ConfigError(f"algorithm {algo!r}: allowed {list(ALGOS)}")
    import stable_baselines3 as sb3

    return {"ppo": sb3.PPO, "sac": sb3.SAC}[algo]


def default_config_path(algo: str) -> Path:
    """``config/rl/<algo>.yml``."""
    return data_path("config", "rl", f"{algo}.yml")


def load_rl_config(algo: str, env_id: str, path: str | Path | None = None) -> dict[str, Any]:
    """The resolved hyperparameters for ``env_id``: its block over ``default``, checked against the algorithm."""
    cls = algorithm_class(algo)
    p = Path(path) if path is not None else default_config_path(algo)
    data = read_yaml(p)
    if "default" not in data:
        raise ConfigError(f"{p}: missing section 'default' (found {sorted(data)})")
    cfg = dict(data["default"] or {})
    block = data.get(env_id) or {}
    for key, value in block.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    allowed = set(RUN_KEYS) | (set(inspect.signature(cls.__init__).parameters) - {"self", "env"})
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {unknown} for {algo} on {env_id}; allowed: {sorted(allowed)}")
    act = (cfg.get("policy_kwargs") or {}).get("activation_fn")
    if act is not None and act not in ACTIVATIONS:
        raise ConfigError(f"{p}: field 'policy_kwargs.activation_fn': {act!r} is not one of {list(ACTIVATIONS)}")
    return cfg


def policy_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """``policy_kwargs`` with an activation name turned into the torch module class."""
    kw = dict(cfg.get("policy_kwargs") or {})
    if "activation_fn" in kw:
        import torch.nn as nn

        kw["activation_fn"] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}[
            kw["activation_fn"]
        ]
    return kw
