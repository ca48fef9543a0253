"""``ir-robot bench catheter_nav``: is the catheter world navigable? Scripted insertions
(:mod:`ir_robot.sim.endovascular.navigate`) from the right femoral access to BCA, LCCA, LSA and both renal
arteries in random anatomies (seeds 1000..), in two modes:

* ``guided``: the centreline-guided insertion, the issue's navigability check (floor >= 95 % per target over
  100 anatomies): the angled 0.035" guidewire pushed by the drive while a 0.08 N force pulls its tip towards
  the route ahead (as magnetic navigation would). It measures the anatomy and the mechanics (the instrument
  fits, does not snag or tunnel, and the drive can push it there), not steering skill.
* ``steered``: the drive alone (push and hub roll) steers the pre-curved tip, with the instrument a clinician
  would pick: the angled wire for the arch vessels, a 5F Cobra for the renals. Harder and slower; run on a
  fifth as many anatomies.

``quick`` runs 5 anatomies guided and 2 steered.
"""

from __future__ import annotations

import time
from typing import Any

from tqdm import tqdm

from ir_robot.sim.endovascular import CatheterWorld, CatheterWorldConfig
from ir_robot.sim.endovascular.navigate import InsertionParams, insert_to_target

#: mode -> target -> instrument
TARGETS: dict[str, dict[str, str]] = {
    "guided": {t: "guidewire_035_angled" for t in ("BCA", "LCCA", "LSA", "renal_left", "renal_right")},
    "steered": {
        "BCA": "guidewire_035_angled",
        "LCCA": "guidewire_035_angled",
        "LSA": "guidewire_035_angled",
        "renal_left": "catheter_5fr_cobra",
        "renal_right": "catheter_5fr_cobra",
    },
}
PARAMS = {"guided": InsertionParams(guide_force_n=0.08), "steered": InsertionParams()}
SEED0 = 1000


def run_mode(mode: str, n: int) -> dict[str, Any]:
    """Success rate, median time and retries per target for one mode over ``n`` anatomies."""
    targets, params = TARGETS[mode], PARAMS[mode]
    worlds = {i: CatheterWorld(CatheterWorldConfig(anatomy="random", instrument=i)) for i in set(targets.values())}
    rows: dict[str, list[tuple[bool, float, int]]] = {t: [] for t in targets}
    bar = tqdm(total=n * len(targets), desc=f"{mode} insertions", unit="insertion")
    for k in range(n):
        for target, inst in targets.items():
            world = worlds[inst]
            world.reset(seed=SEED0 + k)
            res = insert_to_target(world, target, params)
            rows[target].append((res.reached, res.time_s, res.retries))
            bar.set_postfix_str(f"anatomy {SEED0 + k} {target}: {'reached' if res.reached else res.reason}")
            bar.update()
    bar.close()
    for w in worlds.values():
        w.close()
    out: dict[str, Any] = {f"{mode}.anatomies": n}
    for target, r in rows.items():
        times = sorted(t for ok, t, _ in r if ok)
        out[f"{mode}.{target}.success"] = sum(ok for ok, _, _ in r) / len(r)
        out[f"{mode}.{target}.median_time_s"] = times[len(times) // 2] if times else float("nan")
        out[f"{mode}.{target}.mean_retries"] = sum(x for _, _, x in r) / len(r)
    out[f"{mode}.all.success"] = sum(sum(ok for ok, _, _ in r) for r in rows.values()) / (n * len(rows))
    out[f"{mode}.failed"] = ", ".join(
        f"{t}@{SEED0 + i}" for t, r in rows.items() for i, (ok, _, _) in enumerate(r) if not ok
    )
    return out


def run(quick: bool = False, n_anatomies: int | None = None, modes: tuple[str, ...] = ("guided", "steered")) -> dict:
    """Both modes: ``n_anatomies`` (default 100, quick 5) guided, a fifth of that (at least 2) steered."""
    n = n_anatomies or (5 if quick else 100)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"max_time_s": PARAMS["guided"].max_time_s}
    for mode in modes:
        out.update(run_mode(mode, n if mode == "guided" else max(2, n // 5)))
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out
