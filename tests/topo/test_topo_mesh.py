"""Topology.device_mesh on gloo: 4 spawned processes, file:// init, hard timeout."""
import os
import time
from datetime import timedelta

import pytest
import torch.multiprocessing as mp

from dmt_compile.errors import TopologyError
from dmt_compile.topo import Level, Topology

pytestmark = pytest.mark.distributed
TIMEOUT_S = 60


def _worker(rank: int, world: int, init: str, result_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world,
                            timeout=timedelta(seconds=30))
    try:
        topo = Topology(2, 2)
        mesh = topo.device_mesh("cpu")
        host = sorted(dist.get_process_group_ranks(mesh.get_group("host")))
        local = sorted(dist.get_process_group_ranks(mesh.get_group("local")))
        ok = [tuple(host) == topo.peer_group(rank), tuple(local) == topo.intra_group(rank),
              mesh.mesh_dim_names == ("host", "local")]
        deep = Topology(4, 1, levels=(Level("rack", 2),))
        mesh3 = deep.device_mesh("cpu", levels=True)
        rack_dim = sorted(dist.get_process_group_ranks(mesh3.get_group("host")))
        ok += [mesh3.mesh_dim_names == ("rack", "host", "local"),
               tuple(mesh3.mesh.shape) == (2, 2, 1),
               rack_dim == [rank - rank % 2, rank - rank % 2 + 1]]
        try:
            Topology(2, 4).device_mesh("cpu")
            ok.append(False)
        except TopologyError:
            ok.append(True)
        with open(os.path.join(result_dir, f"rank{rank}"), "w") as f:
            f.write(",".join(str(int(x)) for x in ok))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_device_mesh_gloo(tmp_path):
    world = 4
    init = f"file://{tmp_path / 'store'}"
    ctx = mp.start_processes(_worker, args=(world, init, str(tmp_path)), nprocs=world,
                             join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail(f"device_mesh workers hung for more than {TIMEOUT_S}s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    for r in range(world):
        flags = (tmp_path / f"rank{r}").read_text().split(",")
        assert flags == ["1"] * len(flags), (r, flags)


def test_device_mesh_needs_process_group():
    with pytest.raises(TopologyError):
        Topology(1, 1).device_mesh("cpu")
