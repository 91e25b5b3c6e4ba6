"""Infusion and device events derived from successive pump snapshots."""
