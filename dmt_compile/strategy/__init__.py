"""`strategy="auto"`: enumerate what the model admits, predict each candidate's step, measure quality
risk when there is data, choose the fastest within the budget, and explain the choice.

| module | what |
|---|---|
| `candidate.py` | `Candidate` (one configuration + its tower loads), `Refusal`, wire dtypes |
| `admission.py` | `ModelFacts`: one plan, one feed trial, the dense profile |
| `candidates.py` | `enumerate_candidates(facts, Pins)` |
| `tm_cost.py` | Tower-Module / decoder FLOPs and parameters from a tower's shape |
| `predict.py` | `StepPredictor` protocol, `Prediction`, `CostModelPredictor` (the analytic cost model) |
| `fitted_predict.py` | `FittedPredictor` (the fitted step model), `default_predictor`, `resolve_predictor` |
| `fitted_default.py` | the shipped fitted parameter set (generated) |
| `quality_risk.py` | `QualityEstimate`, `QualityCheck` protocol, shortlist, verdicts |
| `paired_training.py` | `PairedTraining`: a QualityCheck on the user's labelled batches |
| `choose.py` | `choose` -> `StrategyChoice` |
| `explain.py` | the candidate table and its JSON form |
| `search.py` | `choose_for_graph`: the whole search on a planned graph |
"""
from dmt_compile.strategy.candidate import WIRE_BYTES, WIRE_DTYPES, Candidate, Refusal, TowerLoad
from dmt_compile.strategy.candidates import COMPRESSIONS, Pins, enumerate_candidates
from dmt_compile.strategy.choose import CandidateRow, StrategyChoice, choose
from dmt_compile.strategy.paired_training import PairedTraining
from dmt_compile.strategy.fitted_predict import FittedPredictor, default_predictor
from dmt_compile.strategy.predict import CostModelPredictor, Prediction, StepPredictor
from dmt_compile.strategy.quality_risk import QualityCheck, QualityEstimate
from dmt_compile.strategy.search import DEFAULT_BATCH_PER_RANK, choose_for_graph

__all__ = ["Candidate", "Refusal", "TowerLoad", "WIRE_DTYPES", "WIRE_BYTES", "Pins", "COMPRESSIONS",
           "enumerate_candidates", "CandidateRow", "StrategyChoice", "choose", "PairedTraining", "CostModelPredictor",
           "FittedPredictor", "default_predictor",
           "Prediction", "StepPredictor", "QualityCheck", "QualityEstimate", "choose_for_graph",
           "DEFAULT_BATCH_PER_RANK"]
