"""Testing support: the recorded CRYSTAL runs and the replay executable."""
