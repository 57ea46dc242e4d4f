"""AutoInt with dense features embedded through per-feature ``nn.Linear(1, D)``.

Lookup styles: (a) ``nn.ModuleDict`` of ``nn.Embedding`` with dict input; (i) every dense
feature goes through its own ``nn.Linear(1, D, bias=False)`` and is stacked with the sparse
embeddings into one ``[B, F_sparse + F_dense, D]`` field tensor.
Idiom (not fx-traceable): ``if len(x.shape) != 3: raise ValueError`` inside the
``InteractingLayer`` (``len`` of a Proxy).
Interaction: hand-written multi-head self-attention (2 stacked layers, residual) + linear.
Output: ``[B, 1]`` logits.
Inputs: ``(sparse: dict[str, LongTensor[B]], dense: FloatTensor[B, 4])``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._data import dense, gen, ids, seeded

SPARSE = {"uid": 600, "iid": 900, "cate": 70, "brand": 300, "shop": 450}
NUM_DENSE = 4


class InteractingLayer(nn.Module):
    def __init__(self, embedding_size, head_num=2, use_res=True):
        super().__init__()
        self.att_embedding_size = embedding_size // head_num
        self.head_num = head_num
        self.use_res = use_res
        self.W_Query = nn.Parameter(torch.empty(embedding_size, embedding_size))
        self.W_key = nn.Parameter(torch.empty(embedding_size, embedding_size))
        self.W_Value = nn.Parameter(torch.empty(embedding_size, embedding_size))
        self.W_Res = nn.Parameter(torch.empty(embedding_size, embedding_size))
        for tensor in self.parameters():
            nn.init.normal_(tensor, mean=0.0, std=0.05)

    def forward(self, inputs):
        if len(inputs.shape) != 3:
            raise ValueError("Unexpected inputs dimensions %d, expect to be 3 dimensions" % (len(inputs.shape)))
        querys = torch.tensordot(inputs, self.W_Query, dims=([-1], [0]))
        keys = torch.tensordot(inputs, self.W_key, dims=([-1], [0]))
        values = torch.tensordot(inputs, self.W_Value, dims=([-1], [0]))
        querys = torch.stack(torch.split(querys, self.att_embedding_size, dim=2))
        keys = torch.stack(torch.split(keys, self.att_embedding_size, dim=2))
        values = torch.stack(torch.split(values, self.att_embedding_size, dim=2))
        inner_product = torch.einsum("bnik,bnjk->bnij", querys, keys)
        normalized_att_scores = F.softmax(inner_product / self.att_embedding_size ** 0.5, dim=-1)
        result = torch.matmul(normalized_att_scores, values)
        result = torch.cat(torch.split(result, 1), dim=-1)
        result = torch.squeeze(result, dim=0)
        if self.use_res:
            result += torch.tensordot(inputs, self.W_Res, dims=([-1], [0]))
        return F.relu(result)


class AutoInt(nn.Module):
    def __init__(self, sparse_vocab, num_dense, embedding_size=8, att_layer_num=2):
        super().__init__()
        self.sparse_names = list(sparse_vocab)
        self.embedding_dict = nn.ModuleDict({k: nn.Embedding(v, embedding_size) for k, v in sparse_vocab.items()})
        self.dense_embeddings = nn.ModuleList([nn.Linear(1, embedding_size, bias=False) for _ in range(num_dense)])
        self.int_layers = nn.ModuleList([InteractingLayer(embedding_size) for _ in range(att_layer_num)])
        num_fields = len(sparse_vocab) + num_dense
        self.dnn_linear = nn.Linear(num_fields * embedding_size, 1, bias=False)

    def forward(self, sparse, dense_x):
        sparse_embs = [self.embedding_dict[k](sparse[k]).unsqueeze(1) for k in self.sparse_names]
        dense_embs = [lin(dense_x[:, i:i + 1]).unsqueeze(1) for i, lin in enumerate(self.dense_embeddings)]
        att_input = torch.cat(sparse_embs + dense_embs, dim=1)
        for layer in self.int_layers:
            att_input = layer(att_input)
        return self.dnn_linear(torch.flatten(att_input, start_dim=1))


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = AutoInt(SPARSE, NUM_DENSE)
    g = gen(seed)
    sparse = {k: ids(g, v, batch_size) for k, v in SPARSE.items()}
    return model, (sparse, dense(g, batch_size, NUM_DENSE))
