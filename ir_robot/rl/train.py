"""Train a stable-baselines3 agent on a registered env and keep everything the run depends on.

The run folder (rl-zoo conventions)::

    config.yml          the resolved hyperparameters (config file block over default, CLI overrides)
    command.txt         the command line; git.txt the commit (and whether the tree was dirty)
    model.zip           the final policy; best_model.zip the best evaluation's
    vecnormalize.pkl    observation normalisation statistics (load them with the policy)
    evaluations.npz     EvalCallback's evaluations (timesteps, returns, episode lengths, successes)
    progress.csv        SB3's training log; monitor/ the training episodes
    checkpoints/        periodic model + normalisation checkpoints
    learning_curve.png  evaluation success and return against env steps
    run.json            wall time, env steps/s including learning, the last evaluation
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ir_robot.core.errors import ConfigError
from ir_robot.rl.config import algorithm_class, load_rl_config, policy_kwargs


def _git_describe() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" (dirty tree)" if dirty.stdout.strip() else "")


def _progress_callback(total: int) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm import tqdm

    class TqdmCallback(BaseCallback):
        """A tqdm bar over env steps (SB3's own bar needs the optional 'rich' package)."""

        def _on_training_start(self) -> None:
            self.bar = tqdm(total=total, unit="step", desc="training", smoothing=0.05)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return TqdmCallback()


def make_env_fn(env_id: str, env_kwargs: dict[str, Any]) -> Any:
    """A picklable factory for one monitored env (for DummyVecEnv/SubprocVecEnv)."""
    from functools import partial

    return partial(_make_monitored, env_id, dict(env_kwargs))


def _make_monitored(env_id: str, env_kwargs: dict[str, Any]) -> Any:
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor

    import ir_robot.envs  # noqa: F401  (registers the ids in this process too)

    return Monitor(gym.make(env_id, **env_kwargs), info_keywords=("is_success",))


def train(
    env_id: str,
    algo: str,
    out: str | Path,
    *,
    config: str | Path | None = None,
    seed: int = 0,
    n_envs: int | None = None,
    steps: int | None = None,
    progress: bool = True,
    command: str = "",
    threads: int = 1,
) -> dict[str, Any]:
    """Train ``algo`` on ``env_id`` into the run folder ``out``; returns run.json's content.

    ``threads`` caps torch's intra-op threads: with the env workers on the same cores, more threads than
    free cores made SAC's gradient steps ~50x slower here (OpenMP threads spinning against each other).
    """
    import gymnasium as gym
    import torch
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

    import ir_robot.envs  # noqa: F401

    torch.set_num_threads(max(1, int(threads)))
    if env_id not in gym.registry:
        known = sorted(k for k in gym.registry if k.startswith("ir_robot/"))
        raise ConfigError(f"unknown env id {env_id!r}; registered: {known}")
    cfg = load_rl_config(algo, env_id, config)
    if n_envs is not None:
        cfg["n_envs"] = int(n_envs)
    if steps is not None:
        cfg["n_timesteps"] = int(steps)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yml").write_text(yaml.safe_dump({"env_id": env_id, "algo": algo, "seed": seed, **cfg}))
    (out / "command.txt").write_text((command or " ".join(sys.argv)) + "\n")
    (out / "git.txt").write_text(_git_describe() + "\n")

    env_kwargs = dict(cfg.get("env_kwargs") or {})
    n = int(cfg.get("n_envs", 1))
    fns = [make_env_fn(env_id, env_kwargs) for _ in range(n)]
    venv: VecEnv = SubprocVecEnv(fns) if n > 1 else DummyVecEnv(fns)
    venv.seed(seed)
    eval_env: VecEnv = DummyVecEnv([make_env_fn(env_id, env_kwargs)])
    eval_env.seed(seed + 10_000)  # evaluation episodes never share a seed with training ones
    if cfg.get("normalize", False):
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False)
        eval_env = VecNormalize(eval_env, norm_obs=True, norm_reward=False, training=False)

    cls = algorithm_class(algo)
    skip = {"n_timesteps", "n_envs", "normalize", "env_kwargs", "eval_freq", "eval_episodes", "checkpoint_freq"}
    kwargs = {k: v for k, v in cfg.items() if k not in skip and k not in ("policy", "policy_kwargs")}
    model = cls(cfg.get("policy", "MlpPolicy"), venv, seed=seed, policy_kwargs=policy_kwargs(cfg), **kwargs)
    model.set_logger(configure(str(out), ["csv"]))
    eval_cb = EvalCallback(
        eval_env,
        best_model_save_path=str(out),
        log_path=str(out),
        eval_freq=max(int(cfg.get("eval_freq", 10_000)) // n, 1),
        n_eval_episodes=int(cfg.get("eval_episodes", 10)),
        deterministic=True,
        verbose=0,
    )
    callbacks = [
        eval_cb,
        CheckpointCallback(
            save_freq=max(int(cfg.get("checkpoint_freq", 50_000)) // n, 1),
            save_path=str(out / "checkpoints"),
            save_vecnormalize=True,
        ),
    ]
    total = int(cfg["n_timesteps"])
    if progress:
        callbacks.append(_progress_callback(total))
    t0 = time.perf_counter()
    interrupted = False
    try:
        model.learn(total_timesteps=total, callback=CallbackList(callbacks))
    except KeyboardInterrupt:  # Ctrl-C: keep what was learnt (model, statistics, curve), then stop
        interrupted = True
    wall = time.perf_counter() - t0
    model.save(out / "model.zip")
    if isinstance(venv, VecNormalize):
        venv.save(str(out / "vecnormalize.pkl"))
    venv.close()
    eval_env.close()
    done = int(model.num_timesteps)
    run = {
        "env_id": env_id,
        "algo": algo,
        "seed": seed,
        "n_timesteps": total,
        "timesteps_done": done,
        "interrupted": interrupted,
        "n_envs": n,
        "wall_s": round(wall, 1),
        "env_steps_per_s_including_learning": round(done / wall, 1),
        **last_evaluation(out),
    }
    (out / "run.json").write_text(json.dumps(run, indent=2))
    plot_learning_curve(out)
    if interrupted:
        raise KeyboardInterrupt
    return run


def last_evaluation(run_dir: str | Path) -> dict[str, Any]:
    """The last and best evaluation in ``evaluations.npz``: success rate and mean return."""
    path = Path(run_dir) / "evaluations.npz"
    if not path.is_file():
        return {}
    ev = np.load(path)
    success = ev["successes"].mean(axis=1) if "successes" in ev and ev["successes"].size else None
    ret = ev["results"].mean(axis=1)
    out: dict[str, Any] = {
        "eval_timesteps": int(ev["timesteps"][-1]),
        "eval_mean_return": float(ret[-1]),
        "eval_best_mean_return": float(ret.max()),
    }
    if success is not None:
        out["eval_success_rate"] = float(success[-1])
        out["eval_best_success_rate"] = float(success.max())
    return out


def plot_learning_curve(run_dir: str | Path) -> Path | None:
    """``learning_curve.png``: evaluation success rate and mean return against env steps."""
    path = Path(run_dir) / "evaluations.npz"
    if not path.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = np.load(path)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(ev["timesteps"], ev["results"].mean(axis=1), color="C0", label="mean return")
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return", color="C0")
    if "successes" in ev and ev["successes"].size:
        ax2 = ax.twinx()
        ax2.plot(ev["timesteps"], ev["successes"].mean(axis=1), color="C2", label="success rate")
        ax2.set_ylim(-0.02, 1.02)
        ax2.set_ylabel("success rate", color="C2")
    ax.set_title(Path(run_dir).name)
    fig.tight_layout()
    png = Path(run_dir) / "learning_curve.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
