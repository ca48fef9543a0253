"""``ir-robot train-rl ENV_ID --algo {ppo,sac}``: train a policy in the simulator into a run folder."""

from __future__ import annotations

import shlex
from pathlib import Path


def _train(args) -> int:
    from ir_robot.rl.train import train

    out = Path(args.out or f"out/rl/{args.env_id.split('/')[-1]}_{args.algo}_s{args.seed}")
    command = "ir-robot " + " ".join(shlex.quote(a) for a in args.argv)
    run = train(
        args.env_id,
        args.algo,
        out,
        config=args.config,
        seed=args.seed,
        n_envs=args.n_envs,
        steps=args.steps,
        progress=not args.no_progress,
        command=command,
        threads=args.threads,
    )
    print(
        f"wrote {out}: {run['n_timesteps']} steps in {run['wall_s']} s ({run['env_steps_per_s_including_learning']} /s)"
    )
    if "eval_success_rate" in run:
        print(f"last evaluation: success {run['eval_success_rate']:.0%}, mean return {run['eval_mean_return']:.3f}")
    return 0


def register(sub) -> None:
    """Adds ``ir-robot train-rl`` to the subcommand parsers ``sub``."""
    from ir_robot.rl.config import ALGOS

    p = sub.add_parser("train-rl", help="train an RL policy (stable-baselines3) in a registered environment")
    p.add_argument("env_id", help="a registered id, e.g. ir_robot/CatheterNav-v0")
    p.add_argument("--algo", choices=ALGOS, default="sac")
    p.add_argument("--config", metavar="YAML", help="hyperparameters (default config/rl/<algo>.yml)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-envs", type=int, help="parallel env processes (overrides the config)")
    p.add_argument("--steps", type=int, help="env steps (overrides the config's n_timesteps)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (keep at 1 when envs share the cores)")
    p.add_argument("--out", metavar="DIR", help="run folder (default out/rl/<env>_<algo>_s<seed>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)
