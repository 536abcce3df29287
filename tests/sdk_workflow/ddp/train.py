"""Data-parallel training as the distributed examples write it: torch.distributed set up from the
launcher's environment (torchrun's RANK, WORLD_SIZE, MASTER_ADDR), gradients averaged across hosts,
the model saved by rank 0 only. Gloo on the CPU, NCCL where there is a GPU."""

import argparse
import json
import os
import socket

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=5)
parser.add_argument("--model_dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
args, _ = parser.parse_known_args()

dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
rank, world = dist.get_rank(), dist.get_world_size()
print(f"rank {rank} of {world} on {os.environ.get('SM_CURRENT_HOST')} ({socket.gethostname()}), "
      f"master {os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}", flush=True)

torch.manual_seed(rank)  # each host its own shard of data; DDP keeps the weights equal
model = DistributedDataParallel(torch.nn.Linear(4, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
target = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
for step in range(1, args.steps + 1):
    inputs = torch.eye(4) + 0.01 * torch.randn(4, 4)
    loss = torch.nn.functional.mse_loss(model(inputs), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(f"step {step} loss {loss.item():.4f}", flush=True)

weights = model.module.weight.detach().clone()
gathered = [torch.zeros_like(weights) for _ in range(world)]
dist.all_gather(gathered, weights)
same = all(torch.equal(gathered[0], other) for other in gathered)
print(f"rank {rank}: weights equal on every host: {same}", flush=True)
if rank == 0:
    torch.save(model.module.state_dict(), os.path.join(args.model_dir, "model.pt"))
    with open(os.path.join(args.model_dir, "training.json"), "w") as out:
        json.dump({"world_size": world, "weights_equal": same}, out)
dist.barrier()
dist.destroy_process_group()
