"""Tutorial 3: an equation of state — CRYSTAL's native EOS on TaAs, refitted with pymatgen.

Run it with ``python tutorials/03_equation_of_state.py [output.png]``. The EOS job is replayed from
a recorded real CRYSTAL23 run (LDA, Stuttgart ECPs; see tutorial 1 for what replaying means). The
task document carries the energy-volume points and CRYSTAL's own fits in the layout of atomate2's
EOS flow, so the same analysis works on ``crystal_atomate.flows.eos.CrystalEosMaker`` results, which
run one relaxation per volume instead.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from jobflow import run_locally
from pymatgen.analysis.eos import EOS

from crystal_atomate.demo import replay_environment
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.recipes import EOS_REPLAY, eos_flow


def main(work_dir: Path, png: Path) -> dict[str, float]:
    """Run the EOS job, refit its points with pymatgen's Birch-Murnaghan, plot both; return it."""
    work_dir.mkdir(parents=True, exist_ok=True)
    flow = eos_flow()
    store = CrystalMathJobStore(work_dir / ".crystal_tui.db")
    with replay_environment(work_dir / "replay", EOS_REPLAY):
        run_locally(flow, store=store, create_folders=True, root_dir=work_dir, log=False)

    store.connect()
    eos = store.query_one({"uuid": flow.jobs[0].uuid})["output"]["output"]["eos"]
    fit = EOS("birch_murnaghan").fit(eos["volume"], eos["energy"])
    print(
        f"{len(eos['volume'])} points from {min(eos['volume']):.2f} to {max(eos['volume']):.2f} A^3"
    )
    print(
        f"pymatgen Birch-Murnaghan: V0 {fit.v0:.3f} A^3, B0 {fit.b0_GPa:.1f} GPa, B' {fit.b1:.2f}"
    )
    for name, values in eos["EOS"].items():
        if values.get("b0 GPa") is not None:
            print(f"CRYSTAL {name:20s} V0 {values['v0']:.3f} A^3, B0 {values['b0 GPa']:.1f} GPa")

    axes = fit.plot(text="")
    axes.set_title("TaAs (hexagonal), CRYSTAL23 LDA")
    figure = axes.get_figure()
    figure.set_size_inches(8, 5)
    figure.tight_layout()
    figure.savefig(png, dpi=120)
    plt.close(figure)
    print(f"plot {png}")
    return {"v0": fit.v0, "b0_GPa": fit.b0_GPa, "n_points": len(eos["volume"])}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("taas_eos.png")
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp), target.resolve())
