"""``ir-robot bench catheter_nav``: is the catheter world navigable? A scripted ground-truth insertion
(:mod:`ir_robot.sim.endovascular.navigate`) from the right femoral access to BCA, LCCA, LSA and both renal
arteries in random anatomies (seeds 1000..), with the instrument a clinician would pick: an angled 0.035"
guidewire for the arch vessels, a 5F Cobra catheter for the renals. The issue's floor is >= 95 % per target
over 100 anatomies; ``quick`` runs 5.
"""

from __future__ import annotations

import time
from typing import Any

from tqdm import tqdm

from ir_robot.sim.endovascular import CatheterWorld, CatheterWorldConfig
from ir_robot.sim.endovascular.navigate import InsertionParams, insert_to_target

#: target -> instrument the script uses for it
TARGETS: dict[str, str] = {
    "BCA": "guidewire_035_angled",
    "LCCA": "guidewire_035_angled",
    "LSA": "guidewire_035_angled",
    "renal_left": "catheter_5fr_cobra",
    "renal_right": "catheter_5fr_cobra",
}
SEED0 = 1000


def run(quick: bool = False, n_anatomies: int | None = None) -> dict[str, Any]:
    """Success rate, median time and retries per target over ``n_anatomies`` random anatomies."""
    n = n_anatomies or (5 if quick else 100)
    worlds = {
        inst: CatheterWorld(CatheterWorldConfig(anatomy="random", instrument=inst)) for inst in set(TARGETS.values())
    }
    rows: dict[str, list[tuple[bool, float, int]]] = {t: [] for t in TARGETS}
    t0 = time.perf_counter()
    params = InsertionParams()
    bar = tqdm(total=n * len(TARGETS), desc="insertions", unit="insertion")
    for k in range(n):
        for target, inst in TARGETS.items():
            world = worlds[inst]
            world.reset(seed=SEED0 + k)
            res = insert_to_target(world, target, params)
            rows[target].append((res.reached, res.time_s, res.retries))
            bar.set_postfix_str(f"anatomy {SEED0 + k} {target}: {'reached' if res.reached else res.reason}")
            bar.update()
    bar.close()
    out: dict[str, Any] = {"anatomies": n, "max_time_s": params.max_time_s}
    for target, r in rows.items():
        times = sorted(t for ok, t, _ in r if ok)
        out[f"{target}.success"] = sum(ok for ok, _, _ in r) / len(r)
        out[f"{target}.median_time_s"] = times[len(times) // 2] if times else float("nan")
        out[f"{target}.mean_retries"] = sum(x for _, _, x in r) / len(r)
    out["all.success"] = sum(sum(ok for ok, _, _ in r) for r in rows.values()) / (n * len(rows))
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    for w in worlds.values():
        w.close()
    return out
