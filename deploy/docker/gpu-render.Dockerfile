# syntax=docker/dockerfile:1
# The GPU box image: gpu-render (the entrypoint, port 7070) with ffmpeg (NVENC encoders) and a pinned ComfyUI beside
# it on 127.0.0.1:8188, with the models of the shipped workflow templates. Build from the repository root:
#   docker build -f deploy/docker/gpu-render.Dockerfile -t registry.example.com/framefleet/gpu-render:0.1.0 .
# Base images are pinned by tag; append @sha256:<digest> to NODE_IMAGE and CUDA_IMAGE for reproducible builds.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY package.json package-lock.json ./
COPY gen/package.json gen/
COPY services/ services/
RUN mkdir -p /out \
 && cp package.json package-lock.json /out/ \
 && find gen services -maxdepth 2 -name package.json -exec cp --parents {} /out/ \;

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY --from=manifests /out/ ./
# Scripts are skipped: ffmpeg-static would download its own ffmpeg, and the system one (with NVENC) is used instead.
RUN npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error -w services/gpu-render \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS node

FROM ${CUDA_IMAGE}
ARG COMFYUI_VERSION=v0.3.64
ARG TORCH_VERSION=2.8.0
ARG TORCHVISION_VERSION=0.23.0
ARG TORCHAUDIO_VERSION=2.8.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# 1: bake in the models of templates/text2video-default.json (about 10 GB); 0: mount them at /opt/comfyui/models.
ARG WAN_MODELS=1
ARG WAN_MODELS_URL=https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files

# Ubuntu's ffmpeg has h264_nvenc/hevc_nvenc; the driver's libnvidia-encode comes from the host at run time.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates curl ffmpeg git python3 python3-venv tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node

RUN git clone --depth 1 --branch "${COMFYUI_VERSION}" https://github.com/comfyanonymous/ComfyUI.git /opt/comfyui \
 && python3 -m venv /opt/comfyui/venv \
 && /opt/comfyui/venv/bin/pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" \
      "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" "torchaudio==${TORCHAUDIO_VERSION}" \
 && /opt/comfyui/venv/bin/pip install --no-cache-dir -r /opt/comfyui/requirements.txt

RUN if [ "${WAN_MODELS}" = "1" ]; then \
      curl -fL --retry 5 -o /opt/comfyui/models/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors \
        "${WAN_MODELS_URL}/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors" \
   && curl -fL --retry 5 -o /opt/comfyui/models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors \
        "${WAN_MODELS_URL}/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors" \
   && curl -fL --retry 5 -o /opt/comfyui/models/vae/wan_2.1_vae.safetensors \
        "${WAN_MODELS_URL}/vae/wan_2.1_vae.safetensors"; \
    fi

WORKDIR /app
COPY --from=deps /app/ ./
COPY gen/ gen/
COPY services/common/ services/common/
# gpu-render with its workflow templates (services/gpu-render/templates/*.json, read at run time).
COPY services/gpu-render/ services/gpu-render/
COPY deploy/docker/gpu-render-start.sh deploy/docker/healthcheck.ts deploy/docker/

# An unprivileged user; ComfyUI writes its input, output, temp and user folders.
RUN useradd --uid 10001 --home-dir /home/render --create-home render \
 && mkdir -p /opt/comfyui/input /opt/comfyui/output /opt/comfyui/temp /opt/comfyui/user \
 && chown -R render:render /opt/comfyui/input /opt/comfyui/output /opt/comfyui/temp /opt/comfyui/user

ENV NODE_ENV=production \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,video,utility \
    FFMPEG_PATH=/usr/bin/ffmpeg \
    FRAMEFLEET_RENDER_ADDR=0.0.0.0:7070 \
    FRAMEFLEET_COMFYUI_URL=http://127.0.0.1:8188
USER 10001:10001
EXPOSE 7070
# gpu-render's own answer (GetCapabilities with the lease token from the environment); ComfyUI may take minutes to load.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD ["node", "/app/deploy/docker/healthcheck.ts", "render"]
ENTRYPOINT ["/usr/bin/tini", "--", "/app/deploy/docker/gpu-render-start.sh"]
