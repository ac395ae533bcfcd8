// What the fault tests check about jobs once a fault has passed: each ended SUCCEEDED once, was billed once per
// attempt with a cost that is the sum of its entries, has one valid output of the expected length whose sha256 is the
// recorded one, and no two of its attempts ran at the same time. Each check returns the breaches it found, in words.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Db } from "mongodb";
import { ffprobe } from "@framefleet/common/testing";
import type { JobDoc } from "@framefleet/common";

export async function until<T>(what: string, get: () => Promise<T | undefined | false | null>, ms = 60_000, everyMs = 150): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await get();
    if (v) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Submits a caption job for a file the platform's file server serves; returns its id. */
export async function submitCaption(gateway: string, apiKey: string, videoUrl: string): Promise<string> {
  const res = await fetch(`${gateway}/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ caption: { videoUrl, subtitlesText: "1\n00:00:00,000 --> 00:00:02,000\nkill me\n" } }),
  });
  if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

export const ended = (d: JobDoc) => ["SUCCEEDED", "FAILED", "CANCELED"].includes(d.status);

export async function jobsEnded(db: Db, ids: string[], ms = 90_000): Promise<JobDoc[]> {
  return until(`jobs ${ids.join(",")} to end`, async () => {
    const docs = await db.collection<JobDoc>("jobs").find({ _id: { $in: ids } }).toArray();
    return docs.length === ids.length && docs.every(ended) && docs;
  }, ms, 250);
}

/** One interval an attempt ran, on one clock (this host's). */
export interface AttemptSpan {
  attempt: number;
  start: number;
  end: number;
}

/** Pairs of a job's attempts that ran at the same time (pure). */
export function overlaps(spans: readonly AttemptSpan[]): Array<[number, number]> {
  const s = [...spans].sort((a, b) => a.start - b.start);
  const out: Array<[number, number]> = [];
  for (let i = 1; i < s.length; i++) if (s[i]!.start < s[i - 1]!.end) out.push([s[i - 1]!.attempt, s[i]!.attempt]);
  return out;
}

/**
 * Billed once: one run entry per attempt started (none twice: ids are `usage.<job>.<attempt>`, and none for an attempt
 * that never was), and the job's cost the sum of its charge entries. Waits for billing to catch up with the events.
 */
export async function billingBreaches(db: Db, job: JobDoc, ms = 20_000): Promise<string[]> {
  const entries = () => db.collection("ledger").find({ jobId: job._id }).toArray();
  const settled = await until(`billing of ${job._id}`, async () => {
    const es = await entries();
    const doc = await db.collection<JobDoc>("jobs").findOne({ _id: job._id });
    const charged = es.filter((e) => ["run", "boot_share", "idle_share"].includes(e.kind)).reduce((n, e) => n + e.chargeMicros, 0);
    const runs = es.filter((e) => e.kind === "run");
    return runs.some((e) => e.attempt === job.attempt) && doc?.cost?.amountMicros === charged && { es, doc };
  }, ms).catch(() => undefined);
  if (!settled) {
    const es = await entries();
    return [`${job._id}: billing never settled (${es.length} entries, run attempts ${es.filter((e) => e.kind === "run").map((e) => e.attempt)})`];
  }
  const breaches: string[] = [];
  const runs = settled.es.filter((e) => e.kind === "run");
  const attempts = runs.map((e) => e.attempt as number);
  if (new Set(attempts).size !== attempts.length) breaches.push(`${job._id}: an attempt billed twice (${attempts})`);
  if (attempts.some((a) => a < 1 || a > job.attempt)) breaches.push(`${job._id}: billed an attempt that never ran (${attempts})`);
  if (runs.some((e) => String(e._id) !== `usage.${job._id}.${e.attempt}`)) breaches.push(`${job._id}: run entry under an unexpected id`);
  return breaches;
}

/**
 * The output is one attempt's, whole: one stored file, its bytes' sha256 the recorded one, and ffprobe decodes every
 * frame of a video as long as the input.
 */
export async function outputBreaches(
  db: Db,
  o: { gateway: string; apiKey: string; job: JobDoc; dir: string; seconds: number; fps: number },
): Promise<string[]> {
  const { job } = o;
  const breaches: string[] = [];
  // Other attempts' complete files may be left (a scheduler killed after storing its attempt's output but before
  // marking the job): a leak the caller counts, not a mix. The job's output must be one attempt's, whole.
  const current = await db.collection("outputs.files").countDocuments({ "metadata.jobId": job._id, "metadata.attempt": job.attempt });
  if (current !== 1) breaches.push(`${job._id}: ${current} stored outputs for its last attempt`);
  const res = await fetch(`${o.gateway}/v1/jobs/${job._id}/output`, { headers: { authorization: `Bearer ${o.apiKey}` } });
  if (res.status !== 200) return [...breaches, `${job._id}: output download answered ${res.status}`];
  const bytes = Buffer.from(await res.arrayBuffer());
  const sha = createHash("sha256").update(bytes).digest("hex");
  if (sha !== job.output?.sha256) breaches.push(`${job._id}: output sha256 ${sha} is not the recorded ${job.output?.sha256}`);
  const file = path.join(o.dir, `${job._id}.mp4`);
  fs.writeFileSync(file, bytes);
  try {
    const probe = await ffprobe(file, { countFrames: true });
    const video = probe.streams.find((s) => s.codec_type === "video");
    const frames = Number(video?.nb_read_frames ?? 0);
    const duration = Number(probe.format.duration ?? 0);
    if (frames !== o.seconds * o.fps) breaches.push(`${job._id}: ${frames} frames decoded, expected ${o.seconds * o.fps}`);
    if (Math.abs(duration - o.seconds) > 0.25) breaches.push(`${job._id}: ${duration} s long, expected ${o.seconds}`);
  } catch (err) {
    breaches.push(`${job._id}: ffprobe could not read the output: ${String(err)}`);
  } finally {
    fs.rmSync(file, { force: true });
  }
  return breaches;
}

/** Complete output files of a job's earlier attempts, still stored. */
export async function strayOutputs(db: Db, job: JobDoc): Promise<number> {
  return db.collection("outputs.files").countDocuments({ "metadata.jobId": job._id, "metadata.attempt": { $ne: job.attempt } });
}

/** Job working directories (`framefleet-job-*`) left anywhere under root, e.g. by a worker killed mid-job. */
export function leftoverJobDirs(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (e.name.startsWith("framefleet-job-")) found.push(path.relative(root, p));
      else if (depth > 0) walk(p, depth - 1);
    }
  };
  walk(root, 2);
  return found;
}

/** Whether a process runs (false for a pid that is not a positive integer: kill(0) would mean our whole group). */
export function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Two attempts of the job that ran at the same time. An attempt runs from its start (the instance's attempt record)
 * to its end: billing's run entry, or, for an attempt whose scheduler was killed (no usage was sent), the moment its
 * worker was gone.
 */
export async function attemptOverlaps(db: Db, job: JobDoc, deaths: ReadonlyMap<string, number> = new Map()): Promise<string[]> {
  const spans: AttemptSpan[] = [];
  const insts = await db.collection("instances").find({ "attempts.jobId": job._id }).toArray();
  const runs = await db.collection("ledger").find({ jobId: job._id, kind: "run" }).toArray();
  for (const inst of insts) {
    for (const rec of (inst.attempts as Array<{ jobId: string; attempt: number; startedAt: Date }>).filter((r) => r.jobId === job._id)) {
      const run = runs.find((r) => r.attempt === rec.attempt);
      const end = run ? (run.endedAt as Date).getTime() : deaths.get(inst._id as unknown as string);
      if (end === undefined) return [`${job._id}: attempt ${rec.attempt} on ${inst._id} has no known end`];
      spans.push({ attempt: rec.attempt, start: rec.startedAt.getTime(), end });
    }
  }
  return overlaps(spans).map(([a, b]) => `${job._id}: attempts ${a} and ${b} ran at the same time`);
}
