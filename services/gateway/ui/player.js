// Plays a job's output in a <video>: while it renders through MediaSource fed by the DownloadOutput stream (fragmented
// MP4), else the finished file fetched with the key into a Blob.
import { fromBase64 } from "./client.js";
import { codecsFromInitSegment, codecsFromName, initSegmentEnd } from "./mp4.js";

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

const once = (target, event) => new Promise((resolve) => target.addEventListener(event, resolve, { once: true }));

function append(sb, data) {
  return new Promise((resolve, reject) => {
    const done = () => {
      sb.removeEventListener("updateend", done);
      sb.removeEventListener("error", fail);
      resolve();
    };
    const fail = () => {
      sb.removeEventListener("updateend", done);
      reject(new Error("the browser refused a media segment"));
    };
    sb.addEventListener("updateend", done);
    sb.addEventListener("error", fail, { once: true });
    sb.appendBuffer(data);
  });
}

/** Streams the output into MediaSource; resolves when the stream has ended. Throws when MSE cannot play it. */
async function playLive(api, jobId, video, codecHint, signal, report) {
  const ms = new MediaSource();
  const objectUrl = URL.createObjectURL(ms);
  video.src = objectUrl;
  await once(ms, "sourceopen");
  let head = new Uint8Array(0);
  let sb;
  for await (const m of api.stream("JobService", "DownloadOutput", { jobId }, { signal })) {
    const data = fromBase64(m.data);
    if (!sb) {
      head = concat(head, data);
      if (!initSegmentEnd(head)) continue;
      const codecs = codecsFromInitSegment(head) || codecsFromName(codecHint);
      const type = `video/mp4; codecs="${codecs}"`;
      if (!codecs || !MediaSource.isTypeSupported(type)) throw new Error(`this browser cannot play ${type} through MediaSource`);
      sb = ms.addSourceBuffer(type);
      report(`streaming (${codecs})`);
      await append(sb, head);
      video.play().catch(() => {});
    } else {
      await append(sb, data);
    }
  }
  if (!sb) throw new Error("the output ended before its init segment");
  if (ms.readyState === "open") ms.endOfStream();
  report("streamed");
}

async function playFinished(api, jobId, video, signal, report) {
  const blob = await api.getBlob(`/v1/jobs/${encodeURIComponent(jobId)}/output`, { signal });
  video.src = URL.createObjectURL(blob);
  video.play().catch(() => {});
  report("finished file");
}

/**
 * Plays `jobId` into `video`. `waitFinished()` resolves once the job has succeeded (for the fallback).
 * `report(text)` says how it is playing.
 */
export async function playOutput({ api, jobId, video, codecHint, waitFinished, signal, report }) {
  video.muted = true;
  if (globalThis.MediaSource) {
    try {
      await playLive(api, jobId, video, codecHint, signal, report);
      return;
    } catch (err) {
      if (signal.aborted) return;
      // A restart on another worker (aborted) or a codec MSE cannot take: the finished file still plays.
      report(`live playback stopped (${err.message}); loading the finished file`);
    }
  }
  await waitFinished();
  if (!signal.aborted) await playFinished(api, jobId, video, signal, report);
}
