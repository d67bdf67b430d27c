"""CRYSTAL flows: multi-job workflows built from the job Makers."""
