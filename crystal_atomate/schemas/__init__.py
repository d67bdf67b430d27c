"""Task documents."""
