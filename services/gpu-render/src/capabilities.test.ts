import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { tempDir } from "@framefleet/common/testing";
import { detectCapabilities, nvencTestArgs, parseEncoderList, parseFfmpegVersion, parseNvidiaSmi, pickEncoders } from "./capabilities.ts";

test("ffmpeg version line", () => {
  assert.equal(parseFfmpegVersion("ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2025 the FFmpeg developers\n"), "5.1.9-0+deb12u1");
  assert.equal(parseFfmpegVersion("ffmpeg version n7.1 Copyright"), "n7.1");
  assert.equal(parseFfmpegVersion("not ffmpeg"), undefined);
});

test("nvidia-smi csv (first GPU; names with commas survive)", () => {
  assert.deepEqual(parseNvidiaSmi("NVIDIA GeForce RTX 4090, 24564, 550.54.14\nNVIDIA GeForce RTX 4090, 24564, 550.54.14\n"), {
    name: "NVIDIA GeForce RTX 4090",
    memoryMb: 24564,
    driverVersion: "550.54.14",
  });
  assert.deepEqual(parseNvidiaSmi("NVIDIA H100 80GB HBM3, 81559, 535.104.05"), {
    name: "NVIDIA H100 80GB HBM3",
    memoryMb: 81559,
    driverVersion: "535.104.05",
  });
  assert.equal(parseNvidiaSmi("Weird, Name, 1000, 1.0")!.name, "Weird, Name");
  assert.equal(parseNvidiaSmi(""), undefined);
  assert.equal(parseNvidiaSmi("No devices were found"), undefined);
  assert.equal(parseNvidiaSmi("GPU, [N/A], 1.0"), undefined);
});

test("the NVENC checks are real one-frame encodes with h264_nvenc and hevc_nvenc", () => {
  const args = nvencTestArgs();
  assert.equal(args[args.indexOf("-c:v") + 1], "h264_nvenc");
  assert.equal(args[args.indexOf("-frames:v") + 1], "1");
  const hevc = nvencTestArgs("hevc_nvenc");
  assert.equal(hevc[hevc.indexOf("-c:v") + 1], "hevc_nvenc");
  assert.equal(hevc[hevc.indexOf("-frames:v") + 1], "1");
});

const encoderList = `Encoders:
 V..... = Video
 A..... = Audio
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D libx265              libx265 H.265 / HEVC (codec hevc)
 V....D libvpx-vp9           libvpx VP9 (codec vp9)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 A..... aac                  AAC (Advanced Audio Coding)
`;

test("ffmpeg -encoders: the encoder names", () => {
  assert.deepEqual([...parseEncoderList(encoderList)], ["libx264", "libx265", "libvpx-vp9", "h264_nvenc", "aac"]);
  assert.equal(parseEncoderList("").size, 0);
});

test("encoder per codec: NVENC only where its test encode worked, else software, absent when ffmpeg has none", () => {
  const all = parseEncoderList(encoderList);
  assert.deepEqual(pickEncoders(false, false, all), { h264: "libx264", hevc: "libx265", vp9: "libvpx-vp9" });
  assert.deepEqual(pickEncoders(true, true, all), { h264: "h264_nvenc", hevc: "hevc_nvenc", vp9: "libvpx-vp9" });
  // Some GPUs encode H.264 but not HEVC with NVENC.
  assert.deepEqual(pickEncoders(true, false, all), { h264: "h264_nvenc", hevc: "libx265", vp9: "libvpx-vp9" });
  assert.deepEqual(pickEncoders(false, false, new Set(["libx264"])), { h264: "libx264" });
});

test("detection with fake ffmpeg and nvidia-smi binaries: GPU seen, NVENC works", async () => {
  const dir = tempDir("gpu-render-caps");
  try {
    const ffmpeg = path.join(dir, "ffmpeg");
    // -version prints a version, -encoders a list without libx265; the NVENC test encodes (any other call) succeed.
    fs.writeFileSync(
      ffmpeg,
      '#!/bin/sh\nfor a in "$@"; do\n  [ "$a" = -version ] && echo "ffmpeg version 9.9-test Copyright"\n' +
        '  [ "$a" = -encoders ] && printf " V....D libx264   x\\n V....D libvpx-vp9  x\\n"\ndone\nexit 0\n',
      { mode: 0o755 },
    );
    const smi = path.join(dir, "nvidia-smi");
    fs.writeFileSync(smi, "#!/bin/sh\necho 'NVIDIA GeForce RTX 3090, 24576, 550.1'\n", { mode: 0o755 });
    const caps = await detectCapabilities(ffmpeg, { nvidiaSmi: smi });
    assert.deepEqual(caps, {
      ffmpegVersion: "9.9-test",
      gpu: { name: "NVIDIA GeForce RTX 3090", memoryMb: 24576, driverVersion: "550.1" },
      nvencAvailable: true,
      encoders: { h264: "h264_nvenc", hevc: "hevc_nvenc", vp9: "libvpx-vp9" },
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("detection with the real ffmpeg and no nvidia-smi: libx264, no GPU", async () => {
  const caps = await detectCapabilities("ffmpeg", { nvidiaSmi: "/nonexistent/nvidia-smi" });
  assert.match(caps.ffmpegVersion, /^\S+$/);
  assert.equal(caps.gpu, undefined);
  assert.equal(caps.nvencAvailable, false); // no GPU here: the test encodes must fail
  assert.deepEqual(caps.encoders, { h264: "libx264", hevc: "libx265", vp9: "libvpx-vp9" });
});

test("a missing ffmpeg is a clear start-up error", async () => {
  await assert.rejects(detectCapabilities("/nonexistent/ffmpeg"), /ffmpeg not found at "\/nonexistent\/ffmpeg" \(set FFMPEG_PATH\)/);
});

test("detection with a fake ffmpeg whose h264_nvenc works but hevc_nvenc fails", async () => {
  const dir = tempDir("gpu-render-caps-hevc");
  try {
    const ffmpeg = path.join(dir, "ffmpeg");
    fs.writeFileSync(
      ffmpeg,
      '#!/bin/sh\nfor a in "$@"; do\n  [ "$a" = -version ] && echo "ffmpeg version 9.9-test Copyright"\n' +
        '  [ "$a" = -encoders ] && printf " V....D libx264   x\\n V....D libx265   x\\n"\n  [ "$a" = hevc_nvenc ] && exit 1\ndone\nexit 0\n',
      { mode: 0o755 },
    );
    const caps = await detectCapabilities(ffmpeg, { nvidiaSmi: "/nonexistent/nvidia-smi" });
    assert.equal(caps.nvencAvailable, true);
    assert.deepEqual(caps.encoders, { h264: "h264_nvenc", hevc: "libx265" });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
