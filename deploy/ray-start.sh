#!/usr/bin/env bash
# Start a Ray cluster by hand on machines that share /mnt/shared (NFS). Run the first block on
# the head, the second on every worker, inside the grokgrid image or a venv with grokgrid.
set -euo pipefail
role=${1:?usage: ray-start.sh head|worker HEAD_IP}
head_ip=${2:-}
if [ "$role" = head ]; then
  ray start --head --port=6379 --dashboard-host=0.0.0.0 --num-gpus="$(nvidia-smi -L 2>/dev/null | wc -l)"
  echo "driver: grokgrid sweep SPEC --address auto --storage /mnt/shared/results"
else
  ray start --address="${head_ip:?give the head's IP}:6379" --num-gpus="$(nvidia-smi -L 2>/dev/null | wc -l)"
fi
