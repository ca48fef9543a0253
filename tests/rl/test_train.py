"""ir-robot train-rl: configs (merge, refusal of unknown keys), the run folder, and a policy that reloads."""

import json

import numpy as np
import pytest
import yaml

from ir_robot.cli import main
from ir_robot.core.errors import ConfigError
from ir_robot.rl.config import load_rl_config

TINY = {
    "default": {
        "n_timesteps": 300,
        "n_envs": 1,
        "normalize": True,
        "learning_starts": 100,
        "batch_size": 32,
        "buffer_size": 1000,
        "policy_kwargs": {"net_arch": [32, 32], "activation_fn": "tanh"},
        "eval_freq": 150,
        "eval_episodes": 1,
        "checkpoint_freq": 150,
    },
    "ir_robot/CatheterNav-v0": {"env_kwargs": {"target": "LSA", "anatomy": "type1"}},
}


def test_the_env_block_is_merged_over_default_and_unknown_keys_are_refused(tmp_path):
    cfg = load_rl_config("sac", "ir_robot/CatheterNav-v0")
    assert cfg["env_kwargs"]["target"] == "BCA" and cfg["batch_size"] == 256
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"default": {"learning_rate": 1e-3, "learnin_starts": 5}}))
    with pytest.raises(ConfigError, match="learnin_starts"):
        load_rl_config("sac", "ir_robot/CatheterNav-v0", bad)
    bad.write_text(yaml.safe_dump({"default": {"policy_kwargs": {"activation_fn": "__import__('os')"}}}))
    with pytest.raises(ConfigError, match="activation_fn"):
        load_rl_config("sac", "ir_robot/CatheterNav-v0", bad)
    with pytest.raises(ConfigError, match="allowed"):
        load_rl_config("td3", "ir_robot/CatheterNav-v0")


def test_train_rl_writes_its_run_folder_and_the_policy_reloads(tmp_path, capsys):
    config = tmp_path / "tiny.yml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    code = main(["train-rl", "ir_robot/CatheterNav-v0", "--algo", "sac", "--config", str(config), "--out", str(out)])
    assert code == 0
    for name in (
        "config.yml",
        "command.txt",
        "git.txt",
        "model.zip",
        "best_model.zip",
        "vecnormalize.pkl",
        "evaluations.npz",
        "learning_curve.png",
        "run.json",
        "progress.csv",
    ):
        assert (out / name).is_file(), name
    run = json.loads((out / "run.json").read_text())
    assert run["n_timesteps"] == 300 and "eval_success_rate" in run
    resolved = yaml.safe_load((out / "config.yml").read_text())
    assert resolved["env_kwargs"]["target"] == "LSA" and resolved["algo"] == "sac"
    assert "train-rl" in (out / "command.txt").read_text()

    from stable_baselines3 import SAC

    a = SAC.load(out / "model.zip", device="cpu")
    b = SAC.load(out / "model.zip", device="cpu")
    obs = np.random.default_rng(0).normal(size=(5, 21)).astype(np.float32)
    np.testing.assert_array_equal(a.predict(obs, deterministic=True)[0], b.predict(obs, deterministic=True)[0])


def test_an_unknown_env_id_is_one_clear_error(capsys):
    assert main(["train-rl", "ir_robot/Nope-v0", "--steps", "10"]) == 2
    assert "unknown env id" in capsys.readouterr().err


def test_ctrl_c_keeps_the_model_and_says_so(tmp_path, monkeypatch):
    from stable_baselines3 import SAC

    from ir_robot.rl.train import train

    def interrupted_learn(self, total_timesteps, callback=None, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(SAC, "learn", interrupted_learn)
    config = tmp_path / "tiny.yml"
    config.write_text(yaml.safe_dump(TINY))
    with pytest.raises(KeyboardInterrupt):
        train("ir_robot/CatheterNav-v0", "sac", tmp_path / "run", config=config, progress=False)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["interrupted"] is True and run["timesteps_done"] == 0
    assert (tmp_path / "run" / "model.zip").is_file() and (tmp_path / "run" / "vecnormalize.pkl").is_file()
