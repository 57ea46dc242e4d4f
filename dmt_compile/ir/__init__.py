"""What flows between the stages: meta keys and roles, boundary ops, lookups, Detection, TowerPlan, graph utilities."""
