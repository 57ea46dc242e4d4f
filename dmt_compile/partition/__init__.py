"""Partitioning (pure): Detection x Topology -> TowerPlan; partitioners, affinity, calibration, pins."""
