#!/usr/bin/env bash
# Item 5 of issue 18 on a GPU machine (docs/scale.md): the feature cache at 224 px, 8 views, built
#   keep:   decoded into the image cache first, then extracted (the path measured at 242 images/s);
#   stream: Pillow threads decoding the files while the backbone runs, no image cache;
#   device: the JPEG files of each batch decoded together on the GPU (nvJPEG), no image cache.
# Synthetic JPEG tiles (no data set travels to the GPU machine). Prints the machine and one JSON
# line per mode (images/s, views/s, peak memory, float16 steps from keep's features).
# Usage: bash benchmarks/gpu_extraction.sh [IMAGES] [BATCH] [SOURCE_SIZE]   (defaults 20000 512 224)
set -euo pipefail
IMAGES=${1:-20000}
BATCH=${2:-512}
SOURCE=${3:-224}
PYTHON=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c "import os, torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cpus', len(os.sched_getaffinity(0)), torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"
"$PYTHON" benchmarks/bench_extraction.py --synthetic --images "$IMAGES" --source-size "$SOURCE" --device cuda \
  --image-size 224 --batch-size "$BATCH" --modes keep,stream,device
