"""Catheter-world imaging: fluoroscopy / angiography / DSA (C-arm, Beer-Lambert) and the tip camera.

Modules: :mod:`.carm` (cone-beam geometry, projection matrix), :mod:`.scene_inputs` (the plain
tubes and rods the renderers take), :mod:`.tube_projection` (analytic path lengths),
:mod:`.body_background` (trunk, spine, ribs), :mod:`.fluoroscopy` (frames + ground truth),
:mod:`.tip_camera` (haptic-vision frames + ground truth), :mod:`.imaging_config` (YAML),
:mod:`.demo_scene` (a hand-made aorta for pictures and benches), :mod:`.figures`, :mod:`.bench`.
Nothing here imports rclpy or pybullet.
"""
