#!/bin/sh
# demo.sh CKPT: the main job on the bundled sample checkpoint (make demo).
set -eu
ckpt=$1
echo "\$ ckpt inspect testdata/sample"
"$ckpt" inspect testdata/sample
