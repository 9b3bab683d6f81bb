#!/usr/bin/env bash
# Install the baseline tools the benchmarks compare against:
#   ffmpeg (Debian's package): the reference's frame extraction (kenshohara's generate_video_jpgs.py)
#   Pillow (pip):              the reference's per-frame PIL loading
#   decord (pip):              the other video decoder bench/video_decoders.py measures against PyAV
# Run from the repository root with the project's venv active:  bash bench/setup.sh
set -euo pipefail
if ! command -v ffmpeg >/dev/null; then
    SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ffmpeg
fi
python -m pip install -q pillow decord
ffmpeg -version | head -n 1
python -c "import PIL; print('Pillow', PIL.__version__)"
