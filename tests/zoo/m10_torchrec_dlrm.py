"""torchrec's own ``torchrec.models.dlrm.DLRM`` (REQUIRES torchrec).

Lookup style: (e) ``EmbeddingBagCollection`` (8 tables, one feature each, SUM pooling) fed a
``KeyedJaggedTensor`` with 1..3 ids per bag.
Interaction: DLRM dot (``InteractionArch``: ``bmm`` + ``triu_indices`` buffer).
Output: ``[B, 1]`` logits. Inputs: ``(dense_features: FloatTensor[B, 13],
sparse_features: KeyedJaggedTensor keys f0..f7)``. fx-traceable (KJT is proxyable).
"""
import torch

from ._data import dense, gen, kjt, seeded

NUM_EMBEDDINGS = [100, 250, 50, 1000, 75, 400, 60, 128]
EMBEDDING_DIM = 8
KEYS = [f"f{i}" for i in range(len(NUM_EMBEDDINGS))]


def factory(batch_size: int = 8, seed: int = 0):
    from torchrec.models.dlrm import DLRM
    from torchrec.modules.embedding_configs import EmbeddingBagConfig
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    with seeded(seed):
        tables = [
            EmbeddingBagConfig(name=f"t{i}", embedding_dim=EMBEDDING_DIM, num_embeddings=n, feature_names=[k])
            for i, (k, n) in enumerate(zip(KEYS, NUM_EMBEDDINGS))
        ]
        ebc = EmbeddingBagCollection(tables=tables, device=torch.device("cpu"))
        model = DLRM(embedding_bag_collection=ebc, dense_in_features=13,
                     dense_arch_layer_sizes=[16, EMBEDDING_DIM], over_arch_layer_sizes=[16, 1])
    g = gen(seed)
    return model, (dense(g, batch_size, 13), kjt(g, KEYS, NUM_EMBEDDINGS, batch_size))
