"""CRYSTAL file formats: input decks, geometries, basis sets and outputs."""
