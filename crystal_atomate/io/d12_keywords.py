"""The keywords CRYSTAL23 accepts in each block of a ``.d12`` deck, and how their arguments follow.

The deck reader (:mod:`crystal_atomate.io.d12`) types the keywords workflows set (SHRINK,
TOLINTEG, OPTGEOM's TOLDEG ...) and keeps every other *known* keyword verbatim; a keyword in no
table below is an error ("did you mean SHRINK?"), because CRYSTAL would stop on it or, worse,
read it as the argument of the keyword before. Keywords these tables miss can still be passed:
``CrystalInput.from_string(text, allow_unknown=["NEWKEY"])`` (or ``allow_unknown=True``).

Each table maps a keyword to how its arguments follow it: ``0`` for a flag, ``n > 0`` for
exactly n argument lines (whatever they hold, e.g. a basis-set name), :data:`NUMERIC` for any
number of lines of numbers (``SUPERCEL``, ``ATOMINSE 2 / 6 0 0 0 / 8 .5 .5 .5``), and
:data:`SUBBLOCK` for keywords opening a sub-block closed by its own ``END`` (``DFTD3``).
The lists come from the CRYSTAL23 user's manual as remembered and the real decks of the
reference set; the manual was not at hand, so a keyword missing here is a bug to report, with
``allow_unknown`` as the workaround meanwhile.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "BLOCK_NAMES",
    "CORRELATION_NAMES",
    "COUNTED",
    "EXCHANGE_NAMES",
    "FUNCTIONALS",
    "KEYWORDS",
    "NUMERIC",
    "SUBBLOCK",
    "SUBBLOCK_KEYWORDS",
    "TERMINATORS",
    "Arguments",
    "blocks_knowing",
]

NUMERIC: Final = "numeric"
#: A count line ``N`` followed by exactly N lines (``ATOMINSE``, ``ATOMDISP``, ``MODISYMM``).
COUNTED: Final = "counted"
SUBBLOCK: Final = "subblock"
Arguments = int | Literal["numeric", "counted", "subblock"]


def _table(flags: str = "", numeric: str = "", subblocks: str = "", counted: str = "",
           **counts: int) -> dict[str, Arguments]:
    table: dict[str, Arguments] = dict.fromkeys(flags.split(), 0)
    table.update(dict.fromkeys(numeric.split(), NUMERIC))
    table.update(dict.fromkeys(counted.split(), COUNTED))
    table.update(dict.fromkeys(subblocks.split(), SUBBLOCK))
    table.update({name.replace("_", "-"): count for name, count in counts.items()})
    return table


_OPT_TYPES = "FULLOPTG CELLONLY ITATOCEL CVOLOPT INTREDUN ATOMONLY"
_OPTGEOM = _table(
    flags=f"{_OPT_TYPES} RESTART HESSOPT ONELOG TRUSTRADIUS NOTRUSTR ALLOWTRUSTR PRINTOPT "
    "PRINTFORCES PRINTHESS PRINT HESSIDEN HESSMOD1 HESSMOD2 HESSNUM HESSFREQ HESSEXPL NOXYZ "
    "ANGSTROM BOHR FRACTION BKTRNSF2 CRYDEF TSOPT SORT LNSEARCH NOLNSEARCH STRICTMAXCYCLE RENOSAED "
    "NOSYMMOPS ATOMSYMM OLDCG",
    numeric="TOLDEG TOLDEX TOLDEE MAXCYCLE FINALRUN MAXTRADIUS FRAGMENT EXTPRESS FIXDELTE FIXDEF "
    "FIXINDEX CONSTRAIN FIXCOOR NRSTEPS TOLREDSI STEPBMAT ITACCONV MAXITACE MODEFOLLOW PATHFOLLOW "
    "CHNGTSFOL SCANATOM SCANREDU SCANCELL EXPDE FITDEGR ITCELL LATTPAR",
)
_FREQCALC = _table(
    flags="RESTART INTENS INTPOL INTRAMAN RAMANREA DISPERSION NOINTENS NOMODES MODES ANALYSIS "
    "ECKART NOECKART NORMBORN DIELISO PRINT USESYMM NOUSESYMM COMBMODE TESTFREQ NOKSYMDISP ALL "
    "ADP BANDS",
    numeric="NUMDERIV RAMEXP TEMPERAT PRESSURE ISOTOPES FRAGMENT SCANMODE PHONBAND DIELTENS WANG",
    subblocks="INTCPHF IRSPEC RAMSPEC PREOPTGEOM ANHARM CPHF",
    INTERPHESS=2, PDOS=2, INS=2, STEPSIZE=1, MULTITASK=1,
)
_ELASTCON = {
    **_OPTGEOM,
    **_table(flags="PREOPTGEOM RESTART PRINT SEISMIC", numeric="STEPSIZE NUMDERIV SEISMDIR"),
}
_EOS = {
    **_OPTGEOM,
    **_table(flags="PREOPTGEOM RESTART RESTART2 PRINT", numeric="RANGE PRANGE NPOINTS STEPSIZE"),
}
_GEOMETRY = _table(
    flags="ANGSTROM BOHR BOHRANGS BOHRCR98 FRACTION ATOMSYMM BREAKSYM KEEPSYMM COORPRT EXTPRT "
    "TESTGEOM PRIMITIV CRYAPI_OUT MAKESAED PRSYMDIR SYMMDIR SYMMOPS ORIGIN PARAMPRT STRUCPRT "
    "ATOMORDE FINDSYM NOPRINT PRINTOUT STOP NOSYMADA SYMMWF PRINTCHG NOSHIFT USESAED MOLEXP",
    counted="ATOMDISP ATOMINSE ATOMSUBS MODISYMM",
    numeric="ATOMREMO ATOMROT SUPERCEL SUPERCON SCELCONF SCELPHONO SLABCUT "
    "SLABINFO NANOTUBE SWCNT NANORE ROTCRY ELASTIC CLUSTER CLUSTSIZE POINTCHG SYMMREMO "
    "TRASREMO BREAKELAS MOLECULE MOLSPLIT RAYCOV NEIGHBOR PLANES WULFF TENSOR SETPRINT HYDROSUB "
    "ROTREF MOLEBSSE ATOMBSSE CONFCNT CONFRAND RUNCONFS HELIX DLVINPUT FIELD FIELDCON SCANMODE",
    subblocks="QHA ANHARM CPHF OPTGEOM FREQCALC ELASTCON EOS",
    BASISSET=1,
)
#: Stand-alone functional keywords of CRYSTAL23 (a ``-D3`` / ``-D3BJ`` suffix may follow).
FUNCTIONALS: Final = frozenset(
    {
        "SVWN",
        "BLYP",
        "PBEXC",
        "PBESOLXC",
        "SOGGAXC",
        "B3PW",
        "B3LYP",
        "PBE0",
        "PBESOL0",
        "B1WC",
        "WC1LYP",
        "B97H",
        "PBE0-13",
        "HSE06",
        "HSESOL",
        "HISS",
        "RSHXLDA",
        "WB97",
        "WB97X",
        "LC-WPBE",
        "LC-WPBESOL",
        "LC-WBLYP",
        "LC-BLYP",
        "CAM-B3LYP",
        "LC-PBE",
        "M06L",
        "REVM06L",
        "MN15L",
        "SCAN",
        "R2SCAN",
        "M05",
        "M052X",
        "M06",
        "M062X",
        "M06HF",
        "MN15",
        "REVM06",
        "SCAN0",
        "R2SCAN0",
        "PBEH3C",
        "HSE3C",
        "B973C",
        "HF3C",
        "HFSOL3C",
        "PBESOL03C",
        "HSESOL3C",
        "B2PLYP",
        "B2GPPLYP",
        "MPW2PLYP",
    }
)
_DFT = {
    **dict.fromkeys(FUNCTIONALS, 0),
    **_table(
        flags="SPIN OLDGRID LGRID XLGRID XXLGRID XXXLGRID HUGEGRID BECKE SAVIN DISTGRID NODISTGRID",
        numeric="RADIAL ANGULAR TOLLDENS TOLLGRID LIMBEK BATCH CHUNKS HYBRID NONLOCAL NEWBECKE",
        EXCHANGE=1,
        CORRELAT=1,
    ),
}
_SCF = _table(
    flags="UHF RHF ROHF DFT ANDERSON GUESSP PPAN NODIIS DIIS DIISALLK SCFDIR NOSHIFT GRADCAL "
    "STRESS NOBIPOLA NOBIPCOU NOBIPEXC MULPOPAN NOMULPOP CMPLXFAC SYMADAPT NOSYMADA TESTPDIM TEST "
    "FULLTIME SAVEWF NOFMWF GUESSPAT EIGS MEMOPRT LOWMEM NOLOWMEM REPLDATA POSTSCF EXCHPERM "
    "KSYMMPRT GCPAUTO ATOMSYMM MAXNEIGHB",
    numeric="SHRINK TOLINTEG TOLDEE MAXCYCLE FMIXING LEVSHIFT BROYDEN SMEAR ATOMSPIN SPINLOCK "
    "LDREMO HISTDIIS PRTDIIS THREDIIS THRKDIIS GUESDUAL EIGSHIFT EIGSHROT BETALOCK SPINEDIT "
    "EXCHSIZE BIPOSIZE ILASIZE INTGPACK MADELIND POLEORDR BIPOLAR NEIGHBOR SETINF SETPRINT "
    "QVRSGDIM FDOCCUP FDAOSYM FDAOCCUP BIESPLIT MONSPLIT GRIMME TOLPSEUD PBAN FIXINDEX",
    subblocks="DFTD3 GCP CPHF",
)

#: Keywords inside the sub-blocks that are checked (others are copied through their END unchecked).
SUBBLOCK_KEYWORDS: Final[dict[str, dict[str, Arguments]]] = {
    "INTCPHF": _table(
        flags="ANDERSON BROYDEN RESTART PRINT DYNAMIC THIRD FOURTH NOINTENS",
        numeric="FMIXING MAXCYCLE TOLALPHA TOLUDIK TOLGAMMA TOLBETA ORDER FREQUENCY",
    ),
    "IRSPEC": _table(
        flags="DIELISO BOTHPOL LORENTZ GAUSS VOIGT PRINT ABSORBANCE REFLECTANCE",
        numeric="LENSTEP NUMSTEP RANGE DAMPFAC REFRIND DIELTENS ANGLEINC",
    ),
    "RAMSPEC": _table(
        flags="LORENTZ GAUSS VOIGT PRINT", numeric="LENSTEP NUMSTEP RANGE DAMPFAC RAMEXP"
    ),
    "DFTD3": _table(
        flags="PRINTC6 ABC ZERO BJ",
        numeric="VERSION S6 S8 A1 A2 RS6 RS8 ALPHA RADIUS CNRADIUS ABCRADIUS",
        FUNC=1,
    ),
    "PREOPTGEOM": _OPTGEOM,
}
#: EXCHANGE and CORRELAT names of the DFT block.
EXCHANGE_NAMES: Final = frozenset({
    "BECKE", "LDA", "VBH", "PBE", "PBESOL", "PWGGA", "SOGGA", "WCGGA", "MPW91", "B97", "SCAN",
    "R2SCAN", "M06L"
})
CORRELATION_NAMES: Final = frozenset({
    "PZ", "VWN", "VBH", "LYP", "P86", "PBE", "PBESOL", "PWGGA", "PWLSD", "WL", "SCAN", "R2SCAN",
    "M06L"
})

#: Known keywords per block; typed keywords are listed too (they are known, and suggestions need
#: them).
KEYWORDS: Final[dict[str, dict[str, Arguments]]] = {
    "geometry": _GEOMETRY,
    "OPTGEOM": _OPTGEOM,
    "FREQCALC": _FREQCALC,
    "ELASTCON": _ELASTCON,
    "EOS": _EOS,
    "DFT": _DFT,
    "SCF": _SCF,
}
#: Human names of the blocks, for messages.
BLOCK_NAMES: Final = {"geometry": "geometry", "OPTGEOM": "OPTGEOM", "FREQCALC": "FREQCALC",
                      "ELASTCON": "ELASTCON", "EOS": "EOS", "DFT": "DFT", "SCF": "Hamiltonian/SCF"}
#: The terminator each block is conventionally closed with (CRYSTAL accepts any word starting with
#: END).
TERMINATORS: Final = {
    "geometry": "END",
    "OPTGEOM": "ENDOPT",
    "FREQCALC": "ENDFREQ",
    "ELASTCON": "END",
    "EOS": "END",
    "DFT": "ENDDFT",
    "SCF": "END",
}


def blocks_knowing(keyword: str) -> list[str]:
    """Return the blocks whose table lists ``keyword`` (to tell misplaced from misspelt)."""
    return [block for block, table in KEYWORDS.items() if keyword in table]
