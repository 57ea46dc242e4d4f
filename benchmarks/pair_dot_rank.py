"""Paired CPU time of one training step: the `dot` Tower Module's scalar projection at rank 16 vs 8, and flat.

Single process, one thread, the bench DLRM (26 x 64) at B = 2,048, 2x2 transform, c = 4,
hierarchical feed (as `benchmarks/profile_tower_modules.py`); 40 interleaved rounds (order
alternating), CPU time per step (`time.process_time`), median ratio with a bootstrap 95 % CI, and
the forward FLOPs per sample (all, Tower Modules). One JSON line on stdout.

    python benchmarks/pair_dot_rank.py > benchmarks/results/evidence/dot_rank8/cpu_pair.json
"""
import time, statistics, json, os, torch, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(1)
import dmt_compile.tower_modules.cores as cores
from benchmarks.profile_tower_modules import build, step, flops_per_sample
models = {}
for r in (16, 8):
    cores.DOT_RANK = r
    torch.manual_seed(0)
    models[r] = build('dot', 2048, 4.0)
torch.manual_seed(0); models['flat'] = build('flat', 2048, 4.0)
for k,(m,i) in models.items(): step(m,i); step(m,i)
t = {k: [] for k in models}
for rnd in range(40):
    for k,(m,i) in (list(models.items()) if rnd % 2 else list(models.items())[::-1]):
        a = time.process_time(); step(m, i); t[k].append(time.process_time() - a)
ratios = [a/b for a,b in zip(t[8], t[16])]
rf8 = [a/b for a,b in zip(t[8], t['flat'])]; rf16 = [a/b for a,b in zip(t[16], t['flat'])]
def ci(x):
    import random; random.seed(0)
    meds = sorted(statistics.median(random.choices(x, k=len(x))) for _ in range(2000))
    return [round(meds[50],3), round(meds[1949],3)]
out = {k: round(statistics.median(v)*1e3,1) for k,v in t.items()}
out.update(rank8_over_rank16=[round(statistics.median(ratios),3), ci(ratios)], rank8_over_flat=[round(statistics.median(rf8),3), ci(rf8)], rank16_over_flat=[round(statistics.median(rf16),3), ci(rf16)], load=os.getloadavg(),
           flops={str(k): flops_per_sample(m, i, 2048) for k,(m,i) in models.items()})
print(json.dumps(out))
