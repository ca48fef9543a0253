"""Vascular anatomy for the catheter world: a vessel tree as a centreline graph, seeded procedural
archetypes (arch types I, II, III and bovine), inner-wall meshes, the lumen's signed distance, user
centreline files and lumen meshes, cardiac/respiratory motion, and paths to named targets.

Body frame: mm, +x patient left, +y posterior, +z cranial (DICOM LPS); procedural trees put the
origin at the aortic valve annulus. See docs/catheter.md, "Anatomy". Nothing is read at import time.
"""

from ir_robot.sim.anatomy.archetypes import ARCHETYPES, ArchetypeSpec, load_archetype
from ir_robot.sim.anatomy.distance import CentrelineSdf, VoxelSdf, tree_grid
from ir_robot.sim.anatomy.graph import (
    Annulus,
    Box,
    Branch,
    GraphView,
    ParavalvularLeak,
    ValveRing,
    VesselTree,
)
from ir_robot.sim.anatomy.mesh import LumenMeshes, build_meshes, tube_mesh
from ir_robot.sim.anatomy.mesh_distance import MeshLumen
from ir_robot.sim.anatomy.motion import MotionSpec
from ir_robot.sim.anatomy.procedural import generate, random_anatomy
from ir_robot.sim.anatomy.route import Route, RouteSegment
from ir_robot.sim.anatomy.user import load_anatomy, load_centrelines, load_lumen_mesh, save_centrelines

__all__ = [
    "ARCHETYPES",
    "Annulus",
    "ArchetypeSpec",
    "Box",
    "Branch",
    "CentrelineSdf",
    "GraphView",
    "LumenMeshes",
    "MeshLumen",
    "MotionSpec",
    "ParavalvularLeak",
    "Route",
    "RouteSegment",
    "ValveRing",
    "VesselTree",
    "VoxelSdf",
    "build_meshes",
    "generate",
    "load_anatomy",
    "load_archetype",
    "load_centrelines",
    "load_lumen_mesh",
    "random_anatomy",
    "save_centrelines",
    "tree_grid",
    "tube_mesh",
]
