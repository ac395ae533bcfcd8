// One private temporary directory per job; every file the job touches lives there under a fixed name.
import * as fs from "node:fs/promises";
import * as path from "node:path";

export const JOB_DIR_PREFIX = "framefleet-job-";

export interface JobWorkspace {
  readonly dir: string;
  /** Path of a file in the directory; names are program constants (no separators, no "..", no leading dot). */
  file(name: string): string;
  /** Removes the directory and everything in it; safe to call more than once. */
  dispose(): Promise<void>;
}

const SAFE_NAME = /^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9]+)?$/;

/** The job id reduced to a short, safe fragment for the directory name (for humans only; the suffix is random). */
export function dirLabel(jobId: string): string {
  return jobId.replace(/[^A-Za-z0-9_-]/g, "").slice(0, 40) || "job";
}

export async function createJobWorkspace(root: string, jobId: string): Promise<JobWorkspace> {
  await fs.mkdir(root, { recursive: true });
  const dir = await fs.mkdtemp(path.join(root, `${JOB_DIR_PREFIX}${dirLabel(jobId)}-`));
  let disposed: Promise<void> | undefined;
  return {
    dir,
    file(name: string): string {
      if (!SAFE_NAME.test(name)) throw new Error(`unsafe workspace file name ${JSON.stringify(name)}`);
      return path.join(dir, name);
    },
    dispose(): Promise<void> {
      disposed ??= fs.rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
      return disposed;
    },
  };
}
