"""torchrec's own ``torchrec.models.dlrm.DLRM_DCN`` (REQUIRES torchrec).

Lookup style: (e) ``EmbeddingBagCollection`` with 6 tables; table ``t_user`` serves two
features (``user_id`` and ``target_user_id``, i.e. (f) a shared table via ``feature_names``);
``KeyedJaggedTensor`` input with 1..3 ids per bag.
Interaction: DCN-v2 low-rank cross net (``InteractionDCNArch`` / ``LowRankCrossNet``).
Output: ``[B, 1]`` logits. Inputs: ``(dense_features: FloatTensor[B, 13],
sparse_features: KeyedJaggedTensor)`` keys: user_id, target_user_id, item_id, cat, brand, city,
hour. fx-traceable.
"""
import torch

from ._data import dense, gen, kjt, seeded

TABLES = {  # table -> (rows, features)
    "t_user": (800, ["user_id", "target_user_id"]),
    "t_item": (1000, ["item_id"]),
    "t_cat": (50, ["cat"]),
    "t_brand": (300, ["brand"]),
    "t_city": (120, ["city"]),
    "t_hour": (64, ["hour"]),
}
EMBEDDING_DIM = 16


def factory(batch_size: int = 8, seed: int = 0):
    from torchrec.models.dlrm import DLRM_DCN
    from torchrec.modules.embedding_configs import EmbeddingBagConfig
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    with seeded(seed):
        configs = [EmbeddingBagConfig(name=t, embedding_dim=EMBEDDING_DIM, num_embeddings=n, feature_names=f)
                   for t, (n, f) in TABLES.items()]
        ebc = EmbeddingBagCollection(tables=configs, device=torch.device("cpu"))
        model = DLRM_DCN(embedding_bag_collection=ebc, dense_in_features=13,
                         dense_arch_layer_sizes=[32, EMBEDDING_DIM], over_arch_layer_sizes=[16, 1],
                         dcn_num_layers=2, dcn_low_rank_dim=4)
    keys = [f for _, fs in TABLES.values() for f in fs]
    rows = [n for n, fs in TABLES.values() for _ in fs]
    g = gen(seed)
    return model, (dense(g, batch_size, 13), kjt(g, keys, rows, batch_size))
