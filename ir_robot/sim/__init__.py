"""Simulation: phantoms, the PyBullet needle world, the needle-tissue force model and US/NIR image synthesis."""
