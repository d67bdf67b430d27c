"""Materials Project structures through the real ``mp-api`` client, cached in the shared database."""
