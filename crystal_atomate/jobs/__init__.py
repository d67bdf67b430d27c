"""CRYSTAL job Makers."""
