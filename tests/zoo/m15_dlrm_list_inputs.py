"""Original-DLRM-style model (``dlrm_s_pytorch.py`` layout) with two trace breakers.

Lookup style: (d) ``nn.ModuleList`` of ``nn.EmbeddingBag(mode="sum")``; inputs follow the
reference DLRM layout: ``lS_o`` offsets ``LongTensor[F, B]`` and ``lS_i`` a Python LIST of
1-D index tensors (1..3 ids per bag).
Idioms (not fx-traceable), one in the root and one in a submodule: the root forward iterates
the list input (``for k, sparse_index_group_batch in enumerate(lS_i)`` -> iterating a
Proxy), and ``Interaction.forward`` does ``if len(x.shape) != 2: raise ValueError``.
Interaction: DLRM dot (``bmm`` + ``triu_indices`` on the upper triangle). Output: ``[B, 1]``.
Inputs: ``(dense_x: FloatTensor[B, 13], lS_o: LongTensor[F, B], lS_i: list[LongTensor[N_k]])``.
"""
import numpy as np
import torch
import torch.nn as nn

from ._data import dense, gen, jagged, seeded

LN_EMB = [200, 50, 700, 90, 300, 1000, 64, 128, 75, 500]
M_SPA = 8


class Interaction(nn.Module):
    def __init__(self, num_features, self_interaction=False):
        super().__init__()
        iu, ju = torch.triu_indices(num_features, num_features, offset=0 if self_interaction else 1)
        self.register_buffer("iu", iu)
        self.register_buffer("ju", ju)

    def forward(self, x, ly):
        if len(x.shape) != 2:
            raise ValueError(f"dense vector must be [B, d], got {tuple(x.shape)}")
        (batch_size, d) = x.shape
        T = torch.cat([x] + ly, dim=1).view((batch_size, -1, d))
        Z = torch.bmm(T, torch.transpose(T, 1, 2))
        Zflat = Z[:, self.iu, self.ju]
        return torch.cat([x] + [Zflat], dim=1)


class DLRM_Net(nn.Module):
    def create_mlp(self, ln, sigmoid_layer=-1):
        layers = nn.ModuleList()
        for i in range(0, ln.size - 1):
            n, m = int(ln[i]), int(ln[i + 1])
            LL = nn.Linear(n, m, bias=True)
            std_dev = np.sqrt(2 / (m + n))
            LL.weight.data = torch.tensor(np.random.normal(0.0, std_dev, size=(m, n)).astype(np.float32))
            LL.bias.data = torch.tensor(np.random.normal(0.0, np.sqrt(1 / m), size=m).astype(np.float32))
            layers.append(LL)
            layers.append(nn.Sigmoid() if i == sigmoid_layer else nn.ReLU())
        return nn.Sequential(*layers)

    def create_emb(self, m, ln):
        emb_l = nn.ModuleList()
        for n in ln:
            EE = nn.EmbeddingBag(int(n), m, mode="sum", sparse=False)
            W = np.random.uniform(low=-np.sqrt(1 / n), high=np.sqrt(1 / n), size=(n, m)).astype(np.float32)
            EE.weight.data = torch.tensor(W, requires_grad=True)
            emb_l.append(EE)
        return emb_l

    def __init__(self, m_spa, ln_emb, ln_bot, ln_top):
        super().__init__()
        self.emb_l = self.create_emb(m_spa, ln_emb)
        self.bot_l = self.create_mlp(ln_bot)
        self.top_l = self.create_mlp(ln_top, sigmoid_layer=-1)  # logits, no final sigmoid
        self.interaction = Interaction(len(ln_emb) + 1)

    def apply_emb(self, lS_o, lS_i, emb_l):
        ly = []
        for k, sparse_index_group_batch in enumerate(lS_i):
            sparse_offset_group_batch = lS_o[k]
            E = emb_l[k]
            V = E(sparse_index_group_batch, sparse_offset_group_batch)
            ly.append(V)
        return ly

    def forward(self, dense_x, lS_o, lS_i):
        x = self.bot_l(dense_x)
        ly = self.apply_emb(lS_o, lS_i, self.emb_l)
        z = self.interaction(x, ly)
        return self.top_l(z)


def factory(batch_size: int = 8, seed: int = 0):
    n = len(LN_EMB) + 1
    ln_top = np.array([M_SPA + n * (n - 1) // 2, 32, 16, 1])
    with seeded(seed):
        np_state = np.random.get_state()
        np.random.seed(seed)
        try:
            model = DLRM_Net(M_SPA, np.array(LN_EMB), np.array([13, 32, M_SPA]), ln_top)
        finally:
            np.random.set_state(np_state)
    model.top_l = model.top_l[:-1]  # drop the trailing ReLU so the output is a raw logit
    g = gen(seed)
    lS_i, offs = zip(*(jagged(g, rows, batch_size) for rows in LN_EMB))
    return model, (dense(g, batch_size, 13), torch.stack(offs), list(lS_i))
