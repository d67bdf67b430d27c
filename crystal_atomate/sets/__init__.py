"""Input-set generators: pymatgen structures plus settings in, CRYSTAL input files out."""
