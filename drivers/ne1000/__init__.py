"""New Era NE-1000 family syringe pumps (reference §2): basic-mode, read-only."""
