"""Pictures a design review can read, drawn with matplotlib (optional: `pip install -e '.[plot]'`).

* `affinity_matrix_png` — the feature-affinity matrix with features ordered by tower, a frame
  around each tower's block (what the partitioner kept together), a colour bar and a legend with
  the share of affinity captured inside towers. 26 features read as a 26 x 26 grid instead of a
  hairball of overlapping edge weights.
* `topology_png` — hosts as boxes of GPUs, the host-local fabric and NIC bandwidths, the upper
  network levels (racks, pods) as brackets; large topologies draw the first and last hosts.
"""
from __future__ import annotations

from typing import Any

from dmt_compile.errors import InputError

__all__ = ["affinity_matrix_png", "topology_png", "require_matplotlib"]

MAX_HOSTS_DRAWN = 8


def require_matplotlib(option: str):
    """pyplot (Agg backend), or a typed error naming the option and the install command."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise InputError(f"{option} needs matplotlib, which is not installed",
                         f"pip install matplotlib (or -e '.[plot]'), or drop {option}") from exc
    return plt


def affinity_matrix_png(plan: Any, affinity: Any, path: str) -> str:
    """Write the affinity matrix ordered by tower to `path` (PNG); returns `path`."""
    import torch

    plt = require_matplotlib("--affinity-png")
    index = affinity.index()
    order = [f for d in plan.details for f in d.features if f in index]
    order += [f for f in affinity.features if f not in order]
    perm = torch.tensor([index[f] for f in order])
    matrix = affinity.matrix[perm][:, perm].double().numpy()
    n = len(order)
    size = min(14.0, max(5.0, 0.28 * n + 2.5))
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(matrix, cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=f"affinity ({affinity.method})")
    ticks = range(n)
    font = max(5, min(10, int(260 / max(n, 1))))
    ax.set_xticks(ticks, order, rotation=90, fontsize=font)
    ax.set_yticks(ticks, order, fontsize=font)
    start = 0
    for d in plan.details:
        k = sum(1 for f in d.features if f in index)
        if k:
            ax.add_patch(plt.Rectangle((start - 0.5, start - 0.5), k, k, fill=False, edgecolor="#e15759",
                                       linewidth=2.0))
            ax.text(start + k / 2 - 0.5, start - 0.9, f"tower {d.index}", ha="center", va="bottom",
                    fontsize=font + 1, color="#e15759",
                    bbox=dict(facecolor="white", alpha=0.85, edgecolor="none", pad=1.0))
        start += k
    captured = affinity.captured({f: d.index for d in plan.details for f in d.features})
    ax.set_title(f"feature affinity, ordered by tower (red frames); {captured:.0%} of it inside towers\n"
                 f"{plan.num_towers} towers, partitioner {plan.strategy}, {affinity.samples} calibration samples",
                 fontsize=11, pad=24)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def _bandwidth(value: float | None) -> str:
    return "?" if not value else f"{value / 1e9:.0f} GB/s"


def topology_png(topo: Any, path: str) -> str:
    """Write a picture of `topo` to `path` (PNG); returns `path`."""
    plt = require_matplotlib("--png")
    hosts = list(range(topo.num_hosts))
    if len(hosts) > MAX_HOSTS_DRAWN:
        hosts = hosts[:MAX_HOSTS_DRAWN // 2] + [None] + hosts[-(MAX_HOSTS_DRAWN // 2):]
    local = topo.local_size
    gpus_drawn = min(local, 8)
    width = max(8.0, 1.6 * len(hosts) + 1)
    fig, ax = plt.subplots(figsize=(width, 4.2))
    for k, host in enumerate(hosts):
        x = k * 1.6
        if host is None:
            ax.text(x + 0.7, 1.2, "...", ha="center", va="center", fontsize=18)
            continue
        ax.add_patch(plt.Rectangle((x, 0), 1.4, 2.4, facecolor="#f4f4f4", edgecolor="#333333"))
        ax.text(x + 0.7, 2.55, f"host {host}", ha="center", fontsize=9)
        for g in range(gpus_drawn):
            gx, gy = x + 0.12 + (g % 2) * 0.62, 0.15 + (3 - g // 2) * 0.52  # rank order reads top-down
            ax.add_patch(plt.Rectangle((gx, gy), 0.54, 0.42, facecolor="#4e79a7", edgecolor="white"))
            rank = host * local + g
            ax.text(gx + 0.27, gy + 0.21, f"r{rank}", ha="center", va="center", fontsize=7, color="white")
        ax.plot([x + 0.7, x + 0.7], [2.4, 3.1], color="#f28e2b", linewidth=2)
    xs = [k * 1.6 + 0.7 for k, h in enumerate(hosts) if h is not None]
    ax.plot([min(xs), max(xs)], [3.1, 3.1], color="#f28e2b", linewidth=3)
    levels = ", ".join(f"{lv.name} of {lv.hosts} hosts" for lv in topo.levels) or "one switch level"
    ax.text((min(xs) + max(xs)) / 2, 3.3, f"inter-host network ({levels}): {_bandwidth(topo.inter_bw)} per rank NIC",
            ha="center", fontsize=9, color="#b05a00")
    note = "" if gpus_drawn == local else f" (8 of {local} drawn)"
    ax.set_title(f"{topo.name or 'topology'} {topo.num_hosts}x{local}: {topo.world_size} ranks; "
                 f"inside a host {_bandwidth(topo.intra_bw)} per rank{note}", fontsize=11)
    ax.set_xlim(-0.3, width - 0.7)
    ax.set_ylim(-0.3, 3.7)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
