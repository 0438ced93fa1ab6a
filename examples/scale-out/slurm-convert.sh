#!/bin/sh
# slurm-convert.sh SRC DST [ckpt convert options...]: converts SRC into DST on
# N machines as a Slurm job array, then merges the parts in a job that starts
# only when every array task succeeded.  SRC and DST must be on a filesystem
# every node sees under the same path.  N comes from PARTS (default 4).
set -eu
[ $# -ge 2 ] || { echo "usage: $0 SRC DST [convert options]" >&2; exit 2; }
src=$1 dst=$2
shift 2
parts=${PARTS:-4}
# each task converts part $SLURM_ARRAY_TASK_ID of $parts; quote the options once for the batch script
opts=""
for o in "$@"; do opts="$opts '$(printf '%s' "$o" | sed "s/'/'\\\\''/g")'"; done
array=$(sbatch --parsable --job-name=ckpt-convert --array="1-$parts" --cpus-per-task="${CPUS:-8}" <<EOS
#!/bin/sh
exec ckpt convert '$src' '$dst' $opts --quiet --part "\$SLURM_ARRAY_TASK_ID/$parts"
EOS
)
sbatch --parsable --job-name=ckpt-merge --dependency="afterok:$array" <<EOS
#!/bin/sh
exec ckpt manifest merge '$dst'
EOS
