#!/usr/bin/env bash
# Extract a large dataset with a Slurm job array: one task per shard, one GPU each.
# Every task writes <output>.shards/<k>-of-<N> and resumes on its own if it is requeued
# (a killed extract continues from its last checkpoint). When all tasks are done, one
# `distillery commit` joins the shards into the cache:
#
#   jobid=$(sbatch --parsable pipelines/slurm_extract.sh)
#   sbatch --dependency=afterok:$jobid --wrap "distillery commit --output /data/cache --remove-shards"
#
#SBATCH --job-name=distillery-extract
#SBATCH --array=0-63
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=16
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --requeue
set -euo pipefail
SHARDS=64            # keep equal to the size of --array
PIPELINE=${PIPELINE:-pipelines/production.toml}
distillery extract --pipeline "$PIPELINE" --device cuda --shard "${SLURM_ARRAY_TASK_ID}/${SHARDS}"
