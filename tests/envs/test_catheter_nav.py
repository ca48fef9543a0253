"""CatheterNav-v0: the gymnasium contract, determinism, pickling and the reward terms."""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ir_robot.envs  # noqa: F401  (registers the ids)
from ir_robot.envs.catheter_nav import OBS_SIZE, CatheterNavEnv


@pytest.fixture(scope="module")
def env():
    e = CatheterNavEnv(target="BCA")
    yield e
    e.close()


def test_check_env_passes_with_warnings_as_errors():
    e = gym.make("ir_robot/CatheterNav-v0", target="LCCA")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(e.unwrapped, skip_render_check=True)
    assert e.spec is not None and e.spec.max_episode_steps == 300
    e.close()


def rollout(e, seed, n=40):
    obs, _ = e.reset(seed=seed)
    out = [obs]
    rewards = []
    rng = np.random.default_rng(seed)
    for _ in range(n):
        obs, r, term, trunc, info = e.step(rng.uniform(-1, 1, 2).astype(np.float32))
        out.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return np.array(out), np.array(rewards)


def test_two_envs_with_one_seed_roll_out_identically(env):
    other = CatheterNavEnv(target="BCA")
    a_obs, a_r = rollout(env, 3)
    b_obs, b_r = rollout(other, 3)
    np.testing.assert_array_equal(a_obs, b_obs)
    np.testing.assert_array_equal(a_r, b_r)
    other.close()


def test_random_anatomies_follow_the_seed():
    e = CatheterNavEnv(target="LSA", random_anatomy=True)
    _, i1 = e.reset(seed=1)
    _, i2 = e.reset(seed=2)
    _, i1b = e.reset(seed=1)
    assert i1["anatomy_seed"] == i1b["anatomy_seed"] != i2["anatomy_seed"]
    e.close()


def test_pickles_for_subprocess_and_ray_workers(env):
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    a, _ = rollout(env, 5, n=10)
    b, _ = rollout(clone, 5, n=10)
    np.testing.assert_array_equal(a, b)
    clone.close()


def test_reward_terms_add_up_and_progress_is_geodesic(env):
    obs, info = env.reset(seed=0)
    assert obs.shape == (OBS_SIZE,) and info["target"] == "brachiocephalic"
    d0 = info["distance_mm"]
    obs, r, term, trunc, info = env.step(np.array([1.0, 0.0], np.float32))  # 3.5 mm up the descending aorta
    terms = info["reward_terms"]
    assert r == pytest.approx(sum(terms.values()))
    assert terms["time"] == -env.time_cost and terms["success"] == 0.0
    assert info["distance_mm"] == pytest.approx(d0 - 3.5, abs=0.5)
    assert terms["progress"] == pytest.approx(env.progress_per_mm * (d0 - info["distance_mm"]))
    _, r, _, _, info = env.step(np.array([-1.0, 0.0], np.float32))  # pulling back costs what pushing gained
    assert info["reward_terms"]["progress"] < 0.0


def test_the_force_term_and_termination():
    e = CatheterNavEnv(target="BCA", force_threshold_n=0.0, force_penalty_per_n=2.0, max_wall_force_n=0.05)
    e.reset(seed=0)
    for _ in range(100):
        _, r, term, _, info = e.step(np.array([1.0, 1.0], np.float32))
        if term:
            break
    assert term and info["wall_force_exceeded"] and not info["success"]
    assert info["reward_terms"]["force"] == pytest.approx(-2.0 * info["max_wall_force_n"])
    e.close()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="obs_mode"):
        CatheterNavEnv(obs_mode="pixels")
    with pytest.raises(Exception, match="no branch named"):
        CatheterNavEnv(target="left_ventricle").reset(seed=0)
    with pytest.raises(gym.error.Error):
        gym.make("ir_robot/CatheterNav-v9")
