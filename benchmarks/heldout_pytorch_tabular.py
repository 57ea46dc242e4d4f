"""pytorch_tabular's models for the held-out capture measure (1.2.0), built from their config objects.

Each model (`CategoryEmbeddingModel`, `FTTransformerModel`, `TabTransformerModel`, `AutoIntModel`,
`GANDALFModel`, `DANetModel`, `GatedAdditiveTreeEnsembleModel`, `NODEModel`, `TabNetModel`) is a
LightningModule: an embedding layer for the categorical fields, a backbone and a head, called as
`model({"continuous": [B, n_cont], "categorical": [B, n_cat]})`. The measure builds them as
`TabularModel` does, without the trainer and the data module: the data, model, trainer, optimizer and
experiment configs merged with OmegaConf, plus the `InferredConfig` the data module would infer (three
categorical fields of 4, 10 and 22 categories, each with pytorch_tabular's extra "unknown" row, and
two numeric features), at small layer sizes.

Installed with `pip install --no-deps` beside the pinned torch, plus the pure-Python packages its import
needs: omegaconf, antlr4-python3-runtime 4.9.3, pytorch-lightning, lightning-utilities, torchmetrics,
rich, markdown-it-py, mdurl, scikit-base and pytorch-tabnet (for TabNet; pandas and scikit-learn were
installed).
"""
from __future__ import annotations

import torch

CARDINALITIES = (4, 10, 22)  # categories per field; pytorch_tabular's encoder reserves one more row
N_CONT = 2
CAT_COLS = [f"c{i}" for i in range(len(CARDINALITIES))]
CONT_COLS = [f"n{i}" for i in range(N_CONT)]

# model name -> (config class, small options)
MODELS = {
    "CategoryEmbeddingModel": ("CategoryEmbeddingModelConfig", {"layers": "32-16"}),
    "FTTransformerModel": ("FTTransformerConfig", {"input_embed_dim": 16, "num_heads": 2, "num_attn_blocks": 2}),
    "TabTransformerModel": ("TabTransformerConfig", {"input_embed_dim": 16, "num_heads": 2, "num_attn_blocks": 2}),
    "AutoIntModel": ("AutoIntConfig", {"attn_embed_dim": 16, "num_heads": 2, "num_attn_blocks": 2}),
    "GANDALFModel": ("GANDALFConfig", {"gflu_stages": 2}),
    "DANetModel": ("DANetConfig", {"n_layers": 4, "k": 3, "abstlay_dim_1": 16, "abstlay_dim_2": 16}),
    "GatedAdditiveTreeEnsembleModel": ("GatedAdditiveTreeEnsembleConfig", {"gflu_stages": 2, "num_trees": 4,
                                                                          "tree_depth": 2}),
    "NODEModel": ("NodeConfig", {"num_layers": 1, "num_trees": 8, "depth": 3}),
    "TabNetModel": ("TabNetModelConfig", {"n_d": 8, "n_a": 8, "n_steps": 2}),
}


def inputs(batch_size: int, seed: int) -> tuple:
    g = torch.Generator().manual_seed(5000 + seed)
    categorical = torch.stack([torch.randint(1, n + 1, (batch_size,), generator=g) for n in CARDINALITIES], dim=1)
    return ({"continuous": torch.randn(batch_size, N_CONT, generator=g), "categorical": categorical},)


def _build(model_name: str, config_name: str, options: dict):
    from omegaconf import OmegaConf
    import pytorch_tabular.models as models
    from pytorch_tabular.config import (DataConfig, ExperimentConfig, InferredConfig, OptimizerConfig,
                                        TrainerConfig)

    data = DataConfig(target=["y"], continuous_cols=CONT_COLS, categorical_cols=CAT_COLS)
    model = getattr(models, config_name)(task="regression", **options)
    config = OmegaConf.merge(*(OmegaConf.to_container(OmegaConf.structured(c)) for c in (
        data, model, TrainerConfig(accelerator="cpu"), ExperimentConfig(project_name="heldout"), OptimizerConfig())))
    cardinality = [n + 1 for n in CARDINALITIES]
    inferred = OmegaConf.structured(InferredConfig(
        categorical_dim=len(CAT_COLS), continuous_dim=N_CONT, output_dim=1, categorical_cardinality=cardinality,
        embedding_dims=[(c, min(8, (c + 1) // 2)) for c in cardinality]))
    return getattr(models, model_name)(config, inferred_config=inferred)


def _factory(model_name: str, config_name: str, options: dict):
    def make(batch_size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        return _build(model_name, config_name, options), inputs(batch_size, seed)

    return make


def models() -> dict:
    return {name: _factory(name, config, options) for name, (config, options) in MODELS.items()}
