"""Tutorial 2: relax -> static -> band structure + DOS on MgO, and a plot of both.

Run it with ``python tutorials/02_relax_bands_dos.py [output.png]``. The four CRYSTAL runs are
replayed from recorded real runs (see tutorial 1). The band structure and DOS come back as pymatgen
objects, stored in the database's ``data`` collection, and are plotted with pymatgen's plotters.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from jobflow import run_locally
from monty.json import MontyDecoder
from mpl_toolkits.axes_grid1 import make_axes_locatable
from pymatgen.electronic_structure.plotter import BSPlotter

from crystal_atomate.demo import mgo_makers, mgo_structure, replay_environment
from crystal_atomate.flows.core import RelaxBandStructureMaker
from crystal_atomate.stores.jobstore import CrystalMathJobStore


def main(work_dir: Path, png: Path) -> dict[str, float]:
    """Run the flow, plot the band structure and the DOS to ``png``; return the headline numbers."""
    work_dir.mkdir(parents=True, exist_ok=True)
    makers = mgo_makers()
    flow = RelaxBandStructureMaker(
        relax_maker=makers["relax"],
        static_maker=makers["static"],
        band_structure_maker=makers["band_structure"],
        dos_maker=makers["dos"],
    ).make(mgo_structure())

    store = CrystalMathJobStore(work_dir / ".crystal_tui.db")
    with replay_environment(work_dir / "replay"):
        run_locally(flow, store=store, create_folders=True, root_dir=work_dir, log=False)

    store.connect()
    decode = MontyDecoder().process_decoded  # the store returns JSON; this rebuilds the documents
    relax = decode(store.get_output(flow.jobs[0].uuid))
    bands = decode(store.get_output(flow.jobs[2].uuid, load=True))
    dos = decode(store.get_output(flow.jobs[3].uuid, load=True))
    print(
        f"relaxed a (primitive)  {relax.structure.lattice.a:.6f} A after {relax.output.opt_points} "
        "points"
    )
    print(
        f"band gap from BAND     {bands.output.bandgap:.4f} eV (direct: {bands.output.direct_gap})"
    )

    axes = BSPlotter(bands.bandstructure).get_plot(ylim=(-8, 12))
    figure = axes.get_figure()
    figure.set_size_inches(10, 6)
    # The DOS panel shares the band structure's energy axis, both zeroed at the valence-band top.
    dos_axes = make_axes_locatable(axes).append_axes("right", size="25%", pad=0.1, sharey=axes)
    total = dos.dos
    vbm = bands.bandstructure.get_vbm()["energy"]
    dos_axes.plot(next(iter(total.densities.values())), total.energies - vbm, color="black")
    dos_axes.set_xlabel("DOS")
    dos_axes.tick_params(labelleft=False)
    figure.tight_layout()
    figure.savefig(png, dpi=120)
    plt.close(figure)
    print(f"plot                   {png}")
    return {"a": relax.structure.lattice.a, "gap": bands.output.bandgap}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("mgo_bands_dos.png")
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp), target.resolve())
