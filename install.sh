#!/usr/bin/env bash
# Install reelrestore on a fresh Debian/Ubuntu machine: system packages, a virtual
# environment in .venv, the package (editable) with its training and test extras.
#   ./install.sh            everything (engine, training, tests)
#   ./install.sh --engine   only what restore-stream needs
set -euo pipefail
cd "$(dirname "$0")"

extras="[train,dev,ray]"
[[ "${1:-}" == "--engine" ]] && extras=""

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
# libportaudio2: sound devices; libsndfile1: audio files; jackd2: a headless device for tests;
# fluidsynth + soundfont, espeak-ng, alsa-utils: real material for the built-in corpus.
packages=(libportaudio2 libsndfile1)
[[ -n "$extras" ]] && packages+=(jackd2 fluidsynth fluid-soundfont-gm espeak-ng alsa-utils)
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch is pinned to the local CPU wheel (==2.13.0) inside the train extra; installing it
# first keeps pip from resolving anything that would pull a CUDA build.
[[ -n "$extras" ]] && .venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".${extras}"
# Compile the numba kernels once (cached beside the sources) so the first run starts fast.
.venv/bin/python -c "import numpy as np; from reelrestore.engine.stft import StftPlan; p = StftPlan(2048, 512, 24000); p.inverse(p.forward(np.zeros((1, 24000), np.float32)))"
echo "reelrestore installed in $(pwd)/.venv — try: .venv/bin/restore-stream --help"
