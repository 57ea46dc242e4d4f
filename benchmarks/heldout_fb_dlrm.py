"""facebookresearch/dlrm's `DLRM_Net` for the held-out capture measure, in the configurations its command
line offers, fed as its random-data loader batches.

The repository is no package: `dlrm_s_pytorch.py` is a script importing its neighbours (`dlrm_data_pytorch`,
`extend_distributed`, `mlperf_logger`, `tricks/`, `optim/`). `FB_DLRM_SRC` must name a checkout (measured at
commit 090956ee):

    git clone https://github.com/facebookresearch/dlrm /tmp/fbdlrm \
        && git -C /tmp/fbdlrm checkout 090956ee2319ddd349a42232958aefccfe3f7b0a   # then FB_DLRM_SRC=/tmp/fbdlrm

It is imported as the script imports it (that folder first on `sys.path`): its optional imports
(`mlperf_logging`, `onnx`, the internal `fbDataLoader`) are guarded by the module itself and only print;
the rest (scikit-learn, tensorboard's `SummaryWriter`) are in this venv.

The model is built as `run()` builds it, from its argument names: `ln_bot` from `--arch-mlp-bot`, `ln_top`
= the interaction width (`num_int`, "dot": n(n-1)/2 pairs, or n(n+1)/2 with `--arch-interaction-itself`,
plus the bottom output; "cat": n times the bottom output) followed by `--arch-mlp-top`, `sigmoid_top` the
last layer, `ndevices` -1 (CPU), `m_spa` the sparse feature size or, with `--md-flag`, `md_solver`'s
per-table dims. Configurations: the command line's defaults (tables 4-3-2, feature size 2, bottom 4-3-2,
top 4-2-1) with "dot", "dot" with self-interaction, and "cat"; a larger one (six tables 1000-500-300-50-20-8,
feature size 16, 13 dense features) with "dot"; `--md-flag` on it (`--md-threshold 0`: with the default 200
`create_emb` gives the tables under the threshold an `nn.EmbeddingBag(n, <list of dims>)`, which raises);
`--qr-flag` with `--qr-operation` mult and add (default threshold 200: three of the six tables are
quotient-remainder, four collisions) and concat (threshold 0 -- the dot interaction needs every table 2x
the feature size -- and the bottom MLP ending at 32); and `--weighted-pooling` fixed and learned.

The batch is what `make_random_data_and_loader` yields with `--data-generation random` (uniform): `X`
`[B, m_den]`, `lS_o` the per-table offsets stacked by `collate_wrapper_random_offset` into one `[tables, B]`
tensor, `lS_i` a list of per-table index vectors, bags of 1 to 10 distinct ids
(`--num-indices-per-lookup 10`), from `generate_uniform_input_batch` with NumPy seeded as the dataset
seeds it.
"""
from __future__ import annotations

import numpy as np
import torch

from heldout_sources import checkout_on_path

SMALL = dict(tables="4-3-2", m_spa=2, bot="4-3-2", top="4-2-1")
LARGE = dict(tables="1000-500-300-50-20-8", m_spa=16, bot="13-32-16", top="64-16-1")
CONFIGS = {
    "dot": dict(SMALL, op="dot"),
    "dot-itself": dict(SMALL, op="dot", itself=True),
    "cat": dict(SMALL, op="cat"),
    "dot-large": dict(LARGE, op="dot"),
    "md": dict(LARGE, op="dot", md_flag=True, md_threshold=0),
    "qr-mult": dict(LARGE, op="dot", qr_flag=True, qr_operation="mult"),
    "qr-add": dict(LARGE, op="dot", qr_flag=True, qr_operation="add"),
    "qr-concat": dict(LARGE, op="dot", bot="13-32-32", qr_flag=True, qr_operation="concat", qr_threshold=0),
    "weighted-fixed": dict(SMALL, op="dot", weighted_pooling="fixed"),
    "weighted-learned": dict(SMALL, op="dot", weighted_pooling="learned"),
}


def _module():
    checkout_on_path("FB_DLRM_SRC", "dlrm_s_pytorch.py", "a facebookresearch/dlrm checkout (see "
                     "heldout_fb_dlrm.py's docstring: git clone https://github.com/facebookresearch/dlrm DIR)")
    import dlrm_s_pytorch

    return dlrm_s_pytorch


def _ints(text: str) -> np.ndarray:
    return np.fromstring(text, dtype=int, sep="-")


def _build(c: dict):
    d = _module()
    ln_emb, ln_bot, m_spa = _ints(c["tables"]), _ints(c["bot"]), c["m_spa"]
    num_fea, m_den_out = ln_emb.size + 1, ln_bot[-1]
    if c["op"] == "dot":
        num_int = (num_fea * (num_fea + 1)) // 2 if c.get("itself") else (num_fea * (num_fea - 1)) // 2
        num_int += m_den_out
    else:
        num_int = num_fea * m_den_out
    ln_top = _ints(f"{num_int}-{c['top']}")
    if c.get("md_flag"):
        m_spa = d.md_solver(torch.tensor(ln_emb), 0.3, d0=m_spa, round_dim=False).tolist()
    model = d.DLRM_Net(
        m_spa, ln_emb, ln_bot, ln_top, arch_interaction_op=c["op"],
        arch_interaction_itself=c.get("itself", False), sigmoid_bot=-1, sigmoid_top=ln_top.size - 2,
        sync_dense_params=True, loss_threshold=0.0, ndevices=-1, qr_flag=c.get("qr_flag", False),
        qr_operation=c.get("qr_operation", "mult"), qr_collisions=4, qr_threshold=c.get("qr_threshold", 200),
        md_flag=c.get("md_flag", False), md_threshold=c.get("md_threshold", 200),
        weighted_pooling=c.get("weighted_pooling"), loss_function="mse")
    return model, ln_emb, int(ln_bot[0])


def _batch(ln_emb, m_den: int, batch_size: int, seed: int):
    import dlrm_data_pytorch as dp

    np.random.seed(123 + seed)  # --numpy-rand-seed 123, reset on access as RandomDataset does
    X, lS_o, lS_i = dp.generate_uniform_input_batch(m_den, ln_emb, batch_size, 10, False, False)
    return X, torch.stack(lS_o), lS_i  # collate_wrapper_random_offset stacks the offsets


def _factory(c: dict):
    def make(batch_size: int = 32, seed: int = 0):
        np.random.seed(123)  # run(): np.random.seed(args.numpy_rand_seed) before building
        torch.manual_seed(seed)
        model, ln_emb, m_den = _build(c)
        return model, _batch(ln_emb, m_den, batch_size, seed)

    return make


def models() -> dict:
    _module()
    return {name: _factory(c) for name, c in CONFIGS.items()}
