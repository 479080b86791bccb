#!/bin/bash
# Multi-node DDP with torchrun (no SLURM): run this on every node with the same RDZV_HOST and RUN_ID.
#   RDZV_HOST=node0 NNODES=2 NPROC=4 RUN_ID=exp1 scripts/torchrun_train.sh [overrides...]
#   RDZV_HOST=localhost NPROC=2 scripts/torchrun_train.sh trainer=ddp_sim debug=default   # CPU try-out
# Lightning's TorchElasticEnvironment reads the ranks torchrun sets; the pinned hydra.run.dir,
# <paths.log_dir>/<task_name>/runs/torchrun_<RUN_ID>, makes all processes share one run directory.
# RUN_ID is also the rendezvous id: it must be the same on every node (a time stamp taken on
# each node would not be), so it is required with NNODES > 1.
set -euo pipefail
: "${RDZV_HOST:?set RDZV_HOST to the hostname of the first node}"
NNODES=${NNODES:-1}
NPROC=${NPROC:-4}
if [[ "$NNODES" -gt 1 ]]; then
    : "${RUN_ID:?set RUN_ID to the same name on every node}"
fi
RUN_ID=${RUN_ID:-$(date +%Y-%m-%d_%H-%M-%S)}
cd "$(dirname "$0")/.."
exec torchrun --nnodes="$NNODES" --nproc-per-node="$NPROC" \
    --rdzv-backend=c10d --rdzv-endpoint="$RDZV_HOST:29500" --rdzv-id="$RUN_ID" \
    src/train.py experiment=gaze trainer=ddp trainer.devices="$NPROC" trainer.num_nodes="$NNODES" \
    'hydra.run.dir=${paths.log_dir}/${task_name}/runs/torchrun_'"$RUN_ID" "$@"
