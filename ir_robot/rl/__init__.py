"""RL training on the simulator's gymnasium environments (stable-baselines3): configs, the trainer, run folders.

``ir-robot train-rl ENV_ID --algo {ppo,sac}``; see docs/training.md. No rclpy here.
"""
