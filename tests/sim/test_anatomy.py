"""The catheter world's anatomy: procedural trees, their validity, arch types, distance, meshes, files, paths."""

import random

import numpy as np
import pytest
import trimesh
import yaml

from ir_robot.core.errors import ConfigError
from ir_robot.sim.anatomy import (
    ARCHETYPES,
    Box,
    Branch,
    CentrelineSdf,
    MotionSpec,
    VesselTree,
    build_meshes,
    generate,
    load_anatomy,
    load_archetype,
    load_centrelines,
    load_lumen_mesh,
    random_anatomy,
    save_centrelines,
    tree_grid,
    tube_mesh,
)
from ir_robot.sim.anatomy.archetypes import archetype_path, clinical_diameter_range
from ir_robot.sim.anatomy.measure import arch_levels, branch_signed_distance, is_bovine, ostium
from ir_robot.sim.anatomy.plot import plot_anatomy
from ir_robot.sim.anatomy.validity import crossings, problems

TARGETS = ("BCA", "LCCA", "LSA", "renal_left", "renal_right", "sma", "coeliac", "RCCA", "RSA")


def _arrays(tree):
    return [(b.name, b.parent, b.origin_arc_mm, b.points_mm, b.radii_mm) for b in tree.branches]


def _same(t1, t2):
    a1, a2 = _arrays(t1), _arrays(t2)
    return len(a1) == len(a2) and all(
        x[:3] == y[:3] and np.array_equal(x[3], y[3]) and np.array_equal(x[4], y[4])
        for x, y in zip(a1, a2, strict=True)
    )


def _brute_force_sdf(tree, points):
    a, b, ra, rb, _ = tree.graph.segments()
    d = b - a
    q = points[:, None, :] - a[None]
    t = np.clip(np.sum(q * d, axis=2) / np.sum(d * d, axis=1), 0.0, 1.0)
    return np.min(np.linalg.norm(q - t[..., None] * d, axis=2) - (ra + t * (rb - ra)), axis=1)


def _straight_tree(radius=5.0, length=100.0):
    pts = np.stack([np.zeros(51), np.zeros(51), np.linspace(0.0, length, 51)], axis=1)
    return VesselTree(branches=(Branch("tube", None, 0.0, pts, np.full(51, radius)),))


def _write_yaml(tmp_path, data, name="a.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_anatomy_and_no_global_rng():
    np_state = np.random.get_state()
    py_state = random.getstate()
    t1 = random_anatomy(7)
    t2 = random_anatomy(7)
    t3 = generate(load_archetype(t1.source.split(":")[1].split()[0]), np.random.default_rng(99))
    t4 = generate(load_archetype(t1.source.split(":")[1].split()[0]), np.random.default_rng(99))
    assert _same(t1, t2) and t1.content_hash() == t2.content_hash()
    assert _same(t3, t4)
    assert t1.valve_ring == t2.valve_ring and t1.leak == t2.leak
    # nothing drew from the global generators
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]


def test_different_seeds_differ():
    hashes = {random_anatomy(seed, "type1").content_hash() for seed in range(8)}
    assert len(hashes) == 8
    a, b = random_anatomy(0, "type2"), random_anatomy(1, "type2")
    # not just a relabelling: the geometry moves by millimetres
    assert (
        np.max(np.abs(a.branch("left_common_carotid").points_mm[-1] - b.branch("left_common_carotid").points_mm[-1]))
        > 1.0
    )


def test_random_draws_every_archetype():
    seen = {random_anatomy(seed).source.split(":")[1].split()[0] for seed in range(12)}
    assert seen == set(ARCHETYPES)


# --- validity ------------------------------------------------------------------------------------


@pytest.mark.parametrize("archetype", ARCHETYPES)
def test_random_anatomies_are_valid(archetype):
    spec = load_archetype(archetype)
    for seed in range(12):
        tree = generate(spec, np.random.default_rng(1000 + seed))
        # connected: one root, every other branch's ancestors reach it
        assert tree.root.parent is None
        assert all(tree.ancestors(n)[-1] == tree.root.name for n in tree.names)
        for b in tree.branches:
            lo, hi = clinical_diameter_range(b.name)
            assert lo <= 2 * b.radii_mm.min() and 2 * b.radii_mm.max() <= hi, (seed, b.name)
            assert np.all(tree.body_box.contains(b.points_mm)), (seed, b.name)
            if b.parent is not None:  # starts inside its parent's lumen
                assert branch_signed_distance(tree.branch(b.parent), b.points_mm[:1])[0] < 0.0
        assert problems(tree) == [], (archetype, seed)


def test_validity_checker_finds_what_it_is_for():
    """Each check of problems() fires on a tree built to break it (so the sweep above can fail)."""
    tree = random_anatomy(3, "type1")
    # a renal artery bent back through the aorta: lumens cross away from the junction
    renal = tree.branch("renal_left")
    aorta = tree.branch("abdominal_aorta")
    o = renal.points_mm[0]
    loop = np.array(
        [
            o,
            o + [40.0, 0.0, 0.0],
            o + [40.0, 0.0, -40.0],
            aorta.point_at(renal.origin_arc_mm + 40.0)[0] - [30.0, 0.0, 0.0],
        ]
    )
    from ir_robot.sim.anatomy import curves

    bad = curves.resample(curves.spline_through(loop, spacing_mm=1.0), 1.0)
    branches = tuple(
        Branch(b.name, b.parent, b.origin_arc_mm, bad, np.full(len(bad), 2.7)) if b.name == "renal_left" else b
        for b in tree.branches
    )
    crossed = VesselTree(branches=branches, body_box=tree.body_box)
    assert any("abdominal_aorta and renal_left" in p for p in crossings(crossed))
    # radius outside the clinical range, a child starting outside its parent, a point outside the body
    fat = tuple(
        Branch(b.name, b.parent, b.origin_arc_mm, b.points_mm, b.radii_mm * 1.5) if b.name == "sma" else b
        for b in tree.branches
    )
    assert any("sma: diameter" in p for p in problems(VesselTree(branches=fat, body_box=tree.body_box)))
    shifted = tuple(
        Branch(b.name, b.parent, b.origin_arc_mm, b.points_mm + [0.0, -30.0, 0.0], b.radii_mm)
        if b.name == "coeliac"
        else b
        for b in tree.branches
    )
    assert any("coeliac: starts" in p for p in problems(VesselTree(branches=shifted, body_box=tree.body_box)))
    small_box = Box((-250.0, -200.0, -400.0), (250.0, 200.0, 400.0))
    assert any("outside the body box" in p for p in problems(VesselTree(branches=tree.branches, body_box=small_box)))
    # a hairpin tighter than the vessel's radius folds the wall
    hair = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 10.0], [3.0, 0.0, 12.0], [6.0, 0.0, 10.0], [6.0, 0.0, 0.0]])
    kinked = curves.resample(curves.spline_through(hair, spacing_mm=0.5), 0.5)
    one = VesselTree(branches=(Branch("tube", None, 0.0, kinked, np.full(len(kinked), 4.0)),))
    assert any("bends tighter" in p for p in problems(one, clinical=False))


# --- arch types ----------------------------------------------------------------------------------


@pytest.mark.parametrize("archetype", ARCHETYPES)
def test_arch_types_have_their_defining_geometry(archetype):
    for seed in range(6):
        tree = random_anatomy(seed, archetype)
        lv = arch_levels(tree)
        drops = {n: lv.drop(n) for n in ("brachiocephalic", "left_common_carotid", "left_subclavian")}
        bca_z = lv.ostium_z_mm["brachiocephalic"]
        if archetype in ("type1", "bovine"):  # all three great vessels from the top of the arch
            assert max(drops.values()) < 1 / 3, drops
        elif archetype == "type2":  # BCA between the outer and inner curvature
            assert lv.z_inner_mm < bca_z < lv.z_outer_mm and 1 / 3 < drops["brachiocephalic"] < 1.0, drops
        else:  # type III: BCA below the inner curvature, the LCCA lower than in a type I arch
            assert bca_z < lv.z_inner_mm, (bca_z, lv.z_inner_mm)
            assert drops["left_common_carotid"] > 1 / 3
        bca, lcca = tree.branch("BCA"), tree.branch("LCCA")
        if archetype == "bovine":  # one common origin
            assert is_bovine(tree) and bca.origin_arc_mm == lcca.origin_arc_mm
            assert np.allclose(ostium(tree, "BCA"), ostium(tree, "LCCA"), atol=12.0)
        else:
            assert not is_bovine(tree) and lcca.origin_arc_mm - bca.origin_arc_mm > 10.0


# --- signed distance -----------------------------------------------------------------------------


def test_sdf_straight_tube_axis_is_minus_radius():
    tree = _straight_tree(radius=5.0)
    axis = np.stack([np.zeros(20), np.zeros(20), np.linspace(10.0, 90.0, 20)], axis=1)
    assert np.allclose(tree.signed_distance(axis), -5.0)
    ring = axis + [7.0, 0.0, 0.0]
    d, g = tree.sdf.signed_distance_and_gradient(ring)
    assert np.allclose(d, 2.0) and np.allclose(g, [1.0, 0.0, 0.0])
    assert np.allclose(tree.signed_distance(np.array([[0.0, 0.0, 108.0]])), 3.0)  # round cap past the end


def test_sdf_negative_on_centrelines_positive_outside_and_exact():
    tree = random_anatomy(11)
    g = tree.graph
    on = tree.signed_distance(g.nodes_mm)
    assert np.all(on <= -g.node_radius_mm + 1e-9)
    # just outside the middle of the left common carotid: +1 mm, nothing else nearby
    cca = tree.branch("LCCA")
    s = np.linspace(0.4, 0.8, 15) * cca.length_mm
    normal = np.cross(np.array([cca.tangent_at(x) for x in s]), [1.0, 0.0, 0.0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    outside = cca.point_at(s) + (cca.radius_at(s) + 1.0)[:, None] * normal
    assert np.allclose(tree.signed_distance(outside), 1.0, atol=0.05)
    corners = np.array([tree.body_box.min_mm, tree.body_box.max_mm])
    assert np.all(tree.signed_distance(corners) > 50.0)
    # the accelerated search equals the brute-force union over all segments, for small batches (one global
    # query, then branch by branch where its bound is not enough) and large ones (branch by branch)
    rng = np.random.default_rng(0)
    idx = rng.integers(len(g.nodes_mm), size=5000)
    pts = g.nodes_mm[idx] + rng.normal(size=(5000, 3)) * g.node_radius_mm[idx, None]
    pts = np.concatenate([pts, rng.uniform(tree.body_box.min_mm, tree.body_box.max_mm, size=(200, 3))])
    truth = _brute_force_sdf(tree, pts)
    assert len(pts) >= tree.sdf.batch_per_branch
    assert np.max(np.abs(tree.signed_distance(pts) - truth)) < 1e-9
    small = np.concatenate([tree.signed_distance(chunk) for chunk in np.array_split(pts, 100)])
    assert np.max(np.abs(small - truth)) < 1e-9


def test_voxel_grid_matches_exact_and_is_cached(tmp_path):
    tree = random_anatomy(2, "type1")
    apex = np.array(tree.landmarks["arch_apex"])
    lo, hi = apex - [20.0, 20.0, 25.0], apex + [20.0, 20.0, 15.0]
    grid = tree_grid(tree, pitch_mm=1.0, lo=lo, hi=hi, cache_dir=tmp_path)
    rng = np.random.default_rng(1)
    pts = rng.uniform(lo, hi, size=(4000, 3))
    exact = tree.signed_distance(pts)
    err = np.abs(grid.signed_distance(pts) - exact)[np.abs(exact) < 2.0]  # near the wall, where contact is
    assert len(err) > 500
    # trilinear: tiny on smooth walls, up to ~pitch/4 at the creases where branches join
    assert np.median(err) < 0.02 and np.percentile(err, 99) < 0.15 and err.max() < 0.5
    far_pts = np.array([[0.0, 0.0, -300.0]])  # outside the grid: the exact fallback
    assert np.allclose(grid.signed_distance(far_pts), tree.signed_distance(far_pts))
    again = tree_grid(tree, pitch_mm=1.0, lo=lo, hi=hi, cache_dir=tmp_path)
    assert np.array_equal(again.values, grid.values) and len(list(tmp_path.glob("*.npz"))) == 1


def test_valve_ring_and_paravalvular_leak():
    for seed in range(5):
        tree = random_anatomy(seed)
        ring, leak, ann = tree.valve_ring, tree.leak, tree.annulus
        n = np.array(ann.normal)
        assert np.isclose(np.linalg.norm(n), 1.0) and np.allclose(tree.root.points_mm[0], ann.centre_mm)
        # the ring sits inside the root's lumen, touching the wall opposite the leak
        centre = np.array(ring.centre_mm)
        d = np.array(leak.direction)
        assert abs(d @ n) < 1e-9
        r_wall = float(tree.root.radius_at((centre - ann.centre_mm) @ n)[0])
        far_edge = centre - d * (ring.radius_mm + ring.tube_radius_mm)
        near_edge = centre + d * (ring.radius_mm + ring.tube_radius_mm)
        axis_pt = np.array(ann.centre_mm) + ((centre - ann.centre_mm) @ n) * n
        assert np.isclose(np.linalg.norm(far_edge - axis_pt), r_wall, atol=1e-6)
        assert np.isclose(r_wall - np.linalg.norm(near_edge - axis_pt), leak.max_gap_mm, atol=1e-6)
        # the leak's centre is open: inside the lumen, outside the ring's tube
        c = np.array([leak.centre_mm])
        assert tree.signed_distance(c)[0] < 0.0 and ring.signed_distance(c)[0] > 0.0
        assert 1.0 <= leak.max_gap_mm <= 4.0 and 90.0 < leak.arc_deg < 270.0


# --- meshes --------------------------------------------------------------------------------------


def test_meshes_watertight_on_the_wall_and_cached(tmp_path):
    tree = random_anatomy(4, "bovine")
    first = build_meshes(tree, cache_dir=tmp_path)
    assert not first.from_cache and set(first.meshes) == set(tree.names)
    for name, mesh in first.meshes.items():
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0.0, name
        own = branch_signed_distance(tree.branch(name), np.asarray(mesh.vertices))
        # every vertex on its own tube's wall; the segment-wise distance bulges where the radius changes faster
        # than spacing / (2 r) per mm, which only the sinus of Valsalva does (up to ~1.6 mm)
        assert np.max(np.abs(own)) < (2.0 if name == "aortic_root" else 0.05), name
    second = build_meshes(tree, cache_dir=tmp_path)
    assert second.from_cache and second.cache_path == first.cache_path
    for name in tree.names:
        assert np.array_equal(second.meshes[name].vertices, first.meshes[name].vertices)
        assert second.meshes[name].is_watertight
    inward = build_meshes(tree, cache_dir=tmp_path, inward=True)
    assert not inward.from_cache and inward.meshes["sma"].volume < 0.0


# --- bad input -----------------------------------------------------------------------------------


def test_archetype_errors_name_file_field_and_range(tmp_path):
    base = yaml.safe_load(archetype_path("type1").read_text())
    data = yaml.safe_load(yaml.safe_dump(base))
    del data["diameters_mm"]["renal"]
    p = _write_yaml(tmp_path, data)
    with pytest.raises(ConfigError) as exc:
        load_archetype(p)
    assert str(p) in str(exc.value) and "diameters_mm.renal" in str(exc.value) and "missing" in str(exc.value)
    data = yaml.safe_load(yaml.safe_dump(base))
    data["arch"]["widht_mm"] = {"mean": 70.0, "min": 60.0, "max": 80.0}
    with pytest.raises(ConfigError, match=r"arch\.widht_mm.*unknown field"):
        load_archetype(_write_yaml(tmp_path, data))
    data = yaml.safe_load(yaml.safe_dump(base))
    data["diameters_mm"]["infrarenal"]["max"] = 30.0
    with pytest.raises(ConfigError) as exc:
        load_archetype(_write_yaml(tmp_path, data))
    msg = str(exc.value)
    assert "diameters_mm.infrarenal.max" in msg and "allowed range [13.0, 22.0] mm" in msg
    data = yaml.safe_load(yaml.safe_dump(base))
    data["diameters_mm"]["renal"] = {"mean": -1.0, "min": -2.0, "max": 6.0}  # radius <= 0
    with pytest.raises(ConfigError, match=r"diameters_mm\.renal\.mean.*allowed range \[4\.0, 7\.0\] mm"):
        load_archetype(_write_yaml(tmp_path, data))
    data = yaml.safe_load(yaml.safe_dump(base))
    data["arch"]["bca_drop"] = {"mean": 1.5, "min": 1.2, "max": 1.8}  # a type III drop in a type I file
    with pytest.raises(ConfigError, match=r"arch\.bca_drop\.min.*arch type I.*allowed range \[0\.0, 0\.3\]"):
        load_archetype(_write_yaml(tmp_path, data))
    data = yaml.safe_load(yaml.safe_dump(base))
    data["body_box_mm"] = {"min_mm": [-250.0, -200.0, -100.0], "max_mm": [250.0, 200.0, 400.0]}
    with pytest.raises(ConfigError, match=r"body_box_mm.*leaves the body.*allowed range x in"):
        load_anatomy(_write_yaml(tmp_path, data), seed=0)


def _user_tree_data():
    return {
        "name": "two_branches",
        "branches": [
            {"name": "trunk", "points_mm": [[0.0, 0.0, float(z)] for z in range(0, 101, 10)], "radii_mm": [8.0]},
            {
                "name": "side",
                "parent": "trunk",
                "points_mm": [[0.0, 0.0, 50.0], [10.0, 0.0, 52.0], [20.0, 0.0, 55.0], [30.0, 0.0, 60.0]],
                "radii_mm": [3.0, 3.0, 2.8, 2.6],
            },
        ],
    }


def test_user_centreline_errors_name_file_field_and_range(tmp_path):
    cases = [
        (
            lambda d: d["branches"][1]["radii_mm"].__setitem__(2, 0.0),
            r"branches\[1\]\.radii_mm\[2\].*allowed range \[0\.05, 50\.0\] mm",
        ),
        (
            lambda d: d["branches"][0]["points_mm"].__setitem__(3, [0.0, 0.0, 900.0]),
            r"branches\[0\]\.points_mm\[3\].*outside the body.*allowed range x in \[-250, 250\]",
        ),
        (
            lambda d: d["branches"][1].__setitem__("parent", "aorta"),
            r"branches\[1\]\.parent.*'aorta' is not a branch.*disconnected.*trunk, side",
        ),
        (lambda d: d["branches"][1].pop("parent"), r"branches\[1\]\.parent.*second root.*disconnected"),
        (
            lambda d: d["branches"][1].update(points_mm=[[30.0, 0.0, 50.0], [40.0, 0.0, 50.0]], radii_mm=[3.0]),
            r"branches\[1\]\.points_mm\[0\].*outside its lumen.*allowed range",
        ),
        (lambda d: d["branches"][0].__setitem__("parent", "side"), r"branches\[0\]\.parent.*no root"),
        (lambda d: d["branches"][1].pop("radii_mm"), r"branches\[1\]\.radii_mm.*missing"),
        (lambda d: d["branches"][1].__setitem__("colour", "red"), r"branches\[1\]\.colour.*unknown field"),
    ]
    for mutate, pattern in cases:
        data = _user_tree_data()
        mutate(data)
        p = _write_yaml(tmp_path, data, "user.yaml")
        with pytest.raises(ConfigError, match=pattern) as exc:
            load_centrelines(p)
        assert str(p) in str(exc.value)
    p = tmp_path / "user.csv"
    p.write_text("branch,parent,x_mm,y_mm,z_mm,radius_mm\ntrunk,,0,0,0,8\ntrunk,,0,0,10,-1\n")
    with pytest.raises(
        ConfigError, match=r"user\.csv: field 'row 3, column radius_mm'.*allowed range \[0\.05, 50\.0\] mm"
    ):
        load_centrelines(p)
    p.write_text("branch,parent,x_mm,y_mm,z_mm\ntrunk,,0,0,0\n")
    with pytest.raises(ConfigError, match=r"field 'header': missing column 'radius_mm'"):
        load_centrelines(p)


def test_unknown_target_lists_the_branches():
    tree = random_anatomy(0, "type1")
    with pytest.raises(ConfigError) as exc:
        tree.route("right_femoral", "vertebral")
    assert (
        "'vertebral'" in str(exc.value) and "left_common_carotid" in str(exc.value) and "renal_right" in str(exc.value)
    )


# --- user anatomies ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_user_centreline_file_round_trips(tmp_path, suffix):
    tree = random_anatomy(5)
    back = load_centrelines(save_centrelines(tree, tmp_path / f"tree{suffix}"))
    assert back.names == tree.names
    for a, b in zip(tree.branches, back.branches, strict=True):
        assert a.parent == b.parent and np.isclose(a.origin_arc_mm, b.origin_arc_mm, atol=1e-6)
        assert np.array_equal(a.points_mm, b.points_mm) and np.array_equal(a.radii_mm, b.radii_mm)
    pts = np.random.default_rng(3).normal(size=(500, 3)) * 30.0 + tree.landmarks["arch_apex"]
    assert np.allclose(back.signed_distance(pts), tree.signed_distance(pts))
    assert isinstance(load_anatomy(tmp_path / f"tree{suffix}"), VesselTree)


def test_user_stl_round_trips_and_must_be_watertight(tmp_path):
    tree = _straight_tree(radius=6.0, length=80.0)
    mesh = tube_mesh(tree.root, sides=48, cap_rings=8)
    path = tmp_path / "lumen.stl"
    mesh.export(path)
    lumen = load_anatomy(path)
    rng = np.random.default_rng(2)
    pts = rng.uniform([-12.0, -12.0, -10.0], [12.0, 12.0, 90.0], size=(2000, 3))
    exact = tree.signed_distance(pts)
    got = lumen.signed_distance(pts)
    clear = np.abs(exact) > 0.2  # the facets sit within 0.02 mm of the true wall at 48 sides
    assert np.all(np.sign(got[clear]) == np.sign(exact[clear]))
    assert np.max(np.abs(got - exact)) < 0.1
    grid = lumen.grid(pitch_mm=2.0, cache_dir=tmp_path)
    # near the wall (the grid interpolates across the axis' ridge elsewhere): trilinear at 2 mm on r = 6 mm
    wall = (pts > grid.origin_mm).all(axis=1) & (pts < grid.upper_mm).all(axis=1) & (np.abs(got) < 2.0)
    assert wall.sum() > 100 and np.max(np.abs(grid.signed_distance(pts[wall]) - got[wall])) < 0.3
    assert np.array_equal(lumen.grid(pitch_mm=2.0, cache_dir=tmp_path).values, grid.values)
    assert len(list(tmp_path.glob("*.npz"))) == 1  # the second grid came from the cache
    holed = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces[:-10], process=False)
    bad = tmp_path / "holed.stl"
    holed.export(bad)
    with pytest.raises(
        ConfigError, match=r"holed\.stl: field 'mesh': the surface is not watertight.*allowed: a closed"
    ):
        load_lumen_mesh(bad)
    far = trimesh.Trimesh(vertices=mesh.vertices + [0.0, 0.0, 2000.0], faces=mesh.faces, process=False)
    outside = tmp_path / "far.obj"
    far.export(outside)
    with pytest.raises(ConfigError, match=r"far\.obj: field 'vertices'.*outside the body \(allowed range"):
        load_lumen_mesh(outside)


# --- paths ---------------------------------------------------------------------------------------


def test_paths_to_every_target_are_continuous_and_clinically_long():
    for seed in range(8):
        tree = random_anatomy(seed)
        access = np.array(tree.landmarks["access_right"])
        for target in TARGETS:
            route = tree.route("right_femoral", target, spacing_mm=1.0)
            end = tree.branch(target)
            assert route.branches[0] == "common_femoral_right" and route.branches[-1] == end.name
            assert np.allclose(route.points_mm[0], access) and np.allclose(route.points_mm[-1], end.points_mm[-1])
            steps = np.linalg.norm(np.diff(route.points_mm, axis=0), axis=1)
            assert steps.max() <= 1.0 + 1e-6  # no jump anywhere, junctions included
            assert np.isclose(route.arc_mm[-1], route.length_mm) and route.length_mm >= steps.sum() - 1e-6
            assert np.all(route.radii_mm > 0.0)
            assert np.all(tree.signed_distance(route.points_mm) < 0.0)  # the whole path runs in the lumen
        # Femoral access to the aortic arch is ~55-70 cm in adults (CFA + EIA + CIA ~20 cm, abdominal aorta
        # ~15 cm, descending thoracic ~20-25 cm, arch ~5 cm), which is why 100-125 cm catheters reach the
        # carotids from the groin; the LCCA ostium must land in that window, the renals ~25-40 cm in.
        lcca = tree.route("right_femoral", "LCCA", target_arc_mm=0.0).length_mm
        assert 550.0 <= lcca <= 750.0, (seed, lcca)
        renal = tree.route("right_femoral", "renal_left", target_arc_mm=0.0).length_mm
        assert 250.0 <= renal <= 400.0, (seed, renal)
        from_desc = tree.route("descending_aorta", "LSA")
        assert from_desc.branches == ("descending_aorta", "aortic_arch", "left_subclavian")


# --- motion and pictures -------------------------------------------------------------------------


def test_motion_is_off_by_default_small_and_smooth():
    tree = random_anatomy(1, "type1")
    assert not tree.motion.enabled and tree.at_time(0.3) is tree
    moving = VesselTree(
        branches=tree.branches,
        body_box=tree.body_box,
        annulus=tree.annulus,
        landmarks=tree.landmarks,
        motion=MotionSpec(enabled=True, cardiac_amplitude_mm=4.0, respiratory_amplitude_mm=8.0),
    )
    assert _same(moving.at_time(0.0), moving)
    shifts = []
    for t in np.linspace(0.0, 4.0, 41):
        moved = moving.at_time(float(t))
        shifts.append(
            np.concatenate([m.points_mm - b.points_mm for m, b in zip(moved.branches, moving.branches, strict=True)])
        )
    shifts = np.array(shifts)
    assert 1.0 < np.abs(shifts).max() <= 12.0 + 1e-9  # at most the two amplitudes
    assert np.abs(np.diff(shifts, axis=0)).max() < 3.0  # smooth in time (0.1 s steps)
    root_shift = np.abs(shifts[:, 0]).max()
    femoral_shift = np.abs(shifts[:, -1]).max()
    assert root_shift > 1.0 and femoral_shift < 0.5  # the heart moves, the groin does not
    assert problems(moving.at_time(0.42)) == []


def test_plot_anatomy_draws_every_view():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tree = random_anatomy(0, "type3")
    fig = plt.figure()
    for k, view in enumerate(("coronal", "lao", "sagittal")):
        ax = fig.add_subplot(1, 4, k + 1)
        plot_anatomy(tree, ax, view=view, arch_lines=view == "lao")
        assert len(ax.patches) >= len(tree.branches)
    ax3 = fig.add_subplot(1, 4, 4, projection="3d")
    plot_anatomy(tree, ax3, view="3d")
    assert len(ax3.lines) == len(tree.branches)
    plt.close(fig)


def test_sdf_class_accepts_plain_polylines():
    pts = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 50.0]])
    sdf = CentrelineSdf([(pts, np.array([4.0, 2.0]))])
    assert np.allclose(sdf.signed_distance(np.array([[0.0, 0.0, 25.0], [10.0, 0.0, 25.0]])), [-3.0, 7.0])
