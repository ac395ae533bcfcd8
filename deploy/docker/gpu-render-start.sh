#!/bin/sh
# Starts ComfyUI on loopback beside gpu-render, then gpu-render in the foreground: the container lives as long as
# gpu-render does (tini, the entrypoint, reaps ComfyUI when it ends). Also usable as a Vast.ai onstart command.
set -eu
cd /opt/comfyui
# Loopback only: gpu-render is the box's one public surface, and it guards access with the lease token.
/opt/comfyui/venv/bin/python main.py --listen 127.0.0.1 --port 8188 --disable-auto-launch &
cd /app
exec node /app/services/gpu-render/src/main.ts
