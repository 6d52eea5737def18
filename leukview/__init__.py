"""LeukView."""

import os

# onnxruntime sends telemetry (DNS look-ups of its collector) and keeps a device ID
# under ~/.cache/Microsoft unless this is set before it loads; LeukView promises no
# network, so it is forced, not defaulted.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"
