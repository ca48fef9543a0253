"""Perception for venipuncture: ultrasound and NIR vessel segmentation, artery/vein
classification, vessel depth and needle tip localisation.

Layout (MONAI-style separation, nothing heavy imported here):

* :mod:`~ir_robot.perception.transforms` image validation, resizing, normalisation
* :mod:`~ir_robot.perception.models` plain ``nn.Module`` segmenters (architecture args only)
* :mod:`~ir_robot.perception.postprocess` label mask -> vessels / needle / NIR veins
  (one module, used by the learned, ground-truth and classical paths)
* :mod:`~ir_robot.perception.classical` OpenCV baselines (threshold/morphology, Hough)
* :mod:`~ir_robot.perception.inference` the predictors (``UltrasoundPerception``, ``NirPerception``,
  ``GroundTruthPerception``) used by the controller and the ROS nodes
* :mod:`~ir_robot.perception.datasets` synthetic datasets from the simulator, with held-out splits
* :mod:`~ir_robot.perception.train` training loop, checkpoints, metrics JSON, learning curve
* :mod:`~ir_robot.perception.metrics` Dice, detection precision/recall, tip and angle errors
* :mod:`~ir_robot.perception.temporal` artery or vein from the pulse over a clip (``VesselKindTracker``)
"""
