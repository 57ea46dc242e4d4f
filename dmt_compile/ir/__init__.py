"""What flows between the stages: meta keys and roles, module paths, boundary ops, lookups, Detection,
TowerPlan, graph utilities, and the one way to run model code quietly (`evaluation.py`)."""
