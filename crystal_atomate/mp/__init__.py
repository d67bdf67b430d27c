"""Materials Project structures via the real ``mp-api`` client, cached in the shared database."""
