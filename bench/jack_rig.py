"""Test rig for the live tests: a JACK client that plays a signal and records its input.

    python -m reelrestore.bench.jack_rig PLAY.npy RECORD.npy SECONDS READY_FILE

Opens a duplex stream on PortAudio's JACK device 'system' (the test rewires its ports),
touches READY_FILE once running, plays PLAY (n, 2) from the start and records SECONDS.
"""

import sys
import time
from pathlib import Path

import numpy as np
import sounddevice as sd

play = np.load(sys.argv[1]).astype(np.float32)
seconds = float(sys.argv[3])
record = np.zeros((int(seconds * 48000), 2), dtype=np.float32)
position = [0]


def callback(indata, outdata, frames, time_info, status):
    i = position[0]
    n = max(0, min(frames, len(record) - i))
    record[i : i + n] = indata[:n]
    m = max(0, min(frames, len(play) - i))
    outdata[:m] = play[i : i + m]
    outdata[m:] = 0.0
    position[0] = i + frames


with sd.Stream(device="system", samplerate=48000, blocksize=512, channels=2, dtype="float32", callback=callback):
    Path(sys.argv[4]).touch()
    while position[0] < len(record):
        time.sleep(0.05)
np.save(sys.argv[2], record)
