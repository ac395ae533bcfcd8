// The comfy_workflow task: run a client's ComfyUI workflow (API format) on this box's ComfyUI and turn its output into
// the job's video. Inputs are downloaded and uploaded into a per-job folder of ComfyUI's input folder; the chosen
// output (video, image sequence, animated image or still) goes through the one final encode.
import { randomUUID } from "node:crypto";
import { parseHttpUrl } from "@framefleet/common";
import type { ComfyWorkflowTask } from "@framefleet/gen/framefleet/v1/job_pb";
import { isLink, type ApiWorkflow } from "../comfy/api.ts";
import { ComfyExecutionFailed, ComfyPromptRejected } from "../comfy/client.ts";
import { buildFinalArgs, pickMedia, prepareMedia } from "../comfy/media.ts";
import { chooseEncoding } from "../encoding.ts";
import { invalidInput, RenderError, toRenderError } from "../errors.ts";
import type { RenderTask, TaskContext } from "../task.ts";

const F = "comfy_workflow";

/** Largest workflow_json accepted, in UTF-8 bytes. */
export const MAX_WORKFLOW_BYTES = 2 * 1024 * 1024;
export const MAX_NODES = 5000;
export const MAX_NODE_ID_LENGTH = 64;
export const MAX_INPUT_FILES = 32;
/** Input file names: a plain file name (no folders), starting with a letter or digit. */
export const INPUT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Frame rate for image-sequence outputs when fps is 0. */
export const DEFAULT_SEQUENCE_FPS = 8;
export const MAX_SEQUENCE_FPS = 120;

export interface ComfyWorkflowPlan {
  workflow: ApiWorkflow;
  inputs: Array<{ name: string; url: string }>;
  outputNodeId?: string;
  fps: number;
}

const shown = (v: string) => JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);

function parseWorkflow(text: string): ApiWorkflow {
  const field = `${F}.workflow_json`;
  if (text.trim() === "") throw invalidInput(field, "is required");
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_WORKFLOW_BYTES) throw invalidInput(field, `is ${bytes} bytes; at most ${MAX_WORKFLOW_BYTES} are accepted`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw invalidInput(field, `is not valid JSON (${(err as Error).message})`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw invalidInput(field, "must be a JSON object mapping node ids to {class_type, inputs} (ComfyUI's API format)");
  }
  const o = doc as Record<string, unknown>;
  if (Array.isArray(o.nodes) && Array.isArray(o.links)) {
    throw invalidInput(field, "is in ComfyUI's UI (graph) format; export the workflow in API format (\"Export (API)\")");
  }
  const nodes = o;
  const ids = Object.keys(nodes);
  if (ids.length === 0) throw invalidInput(field, "has no nodes");
  if (ids.length > MAX_NODES) throw invalidInput(field, `has ${ids.length} nodes; at most ${MAX_NODES} are accepted`);
  for (const id of ids) {
    if (id === "" || id.length > MAX_NODE_ID_LENGTH) throw invalidInput(field, `node id ${shown(id)} must be 1 to ${MAX_NODE_ID_LENGTH} characters`);
    const n = nodes[id] as Record<string, unknown> | null;
    if (typeof n !== "object" || n === null || Array.isArray(n)) throw invalidInput(field, `node "${id}" must be an object {class_type, inputs}`);
    if (typeof n.class_type !== "string" || n.class_type.trim() === "") throw invalidInput(field, `node "${id}" has no class_type`);
    if (typeof n.inputs !== "object" || n.inputs === null || Array.isArray(n.inputs)) {
      throw invalidInput(field, `node "${id}" (${n.class_type}) has no inputs object`);
    }
    for (const [name, v] of Object.entries(n.inputs as Record<string, unknown>)) {
      if (isLink(v) && !(v[0] in nodes)) {
        throw invalidInput(field, `node "${id}" (${n.class_type}) input "${name}" links to node "${v[0]}", which is not in the workflow`);
      }
    }
  }
  return nodes as ApiWorkflow;
}

export function validateComfyWorkflow(task: ComfyWorkflowTask): ComfyWorkflowPlan {
  const workflow = parseWorkflow(task.workflowJson);
  let outputNodeId: string | undefined;
  if (task.outputNodeId !== "") {
    if (!(task.outputNodeId in workflow)) throw invalidInput(`${F}.output_node_id`, `node ${shown(task.outputNodeId)} is not in the workflow`);
    outputNodeId = task.outputNodeId;
  }
  const entries = Object.entries(task.inputUrls);
  if (entries.length > MAX_INPUT_FILES) throw invalidInput(`${F}.input_urls`, `has ${entries.length} files; at most ${MAX_INPUT_FILES} are accepted`);
  const inputs = entries.map(([name, raw]) => {
    const field = `${F}.input_urls[${JSON.stringify(name)}]`;
    if (!INPUT_NAME.test(name) || name.includes("..")) {
      throw invalidInput(field, "the file name must be 1 to 128 letters, digits, '.', '_' or '-', start with a letter or digit and not contain '..'");
    }
    if (raw.trim() === "") throw invalidInput(field, "the URL is required");
    try {
      return { name, url: parseHttpUrl(raw, field).toString() };
    } catch (err) {
      throw toRenderError(err);
    }
  });
  const fps = task.fps;
  if (!Number.isFinite(fps) || (fps !== 0 && (fps < 1 || fps > MAX_SEQUENCE_FPS))) {
    throw invalidInput(`${F}.fps`, `must be 0 (default ${DEFAULT_SEQUENCE_FPS}) or between 1 and ${MAX_SEQUENCE_FPS}, got ${fps}`);
  }
  return { workflow, inputs, outputNodeId, fps: fps === 0 ? DEFAULT_SEQUENCE_FPS : Math.round(fps * 1000) / 1000 };
}

/** Points every input value that is exactly an uploaded file's name at where it was uploaded ("folder/name"). */
export function rewriteInputNames(workflow: ApiWorkflow, uploaded: Map<string, string>): { workflow: ApiWorkflow; rewritten: number } {
  const out = structuredClone(workflow);
  let rewritten = 0;
  for (const node of Object.values(out)) {
    for (const [k, v] of Object.entries(node.inputs)) {
      if (typeof v === "string" && uploaded.has(v)) {
        node.inputs[k] = uploaded.get(v)!;
        rewritten++;
      }
    }
  }
  return { workflow: out, rewritten };
}

/** ComfyUI's refusals and node failures as the job's errors. */
export function comfyRunError(err: unknown, field: string): unknown {
  if (err instanceof ComfyPromptRejected) return invalidInput(`${field}.workflow_json`, `ComfyUI rejected the workflow: ${err.message}`);
  if (err instanceof ComfyExecutionFailed) return new RenderError("render_failed", `${field}: ComfyUI ${err.message}`);
  return err;
}

async function uploadInputs(ctx: TaskContext, plan: ComfyWorkflowPlan): Promise<ApiWorkflow> {
  if (plan.inputs.length === 0) return plan.workflow;
  ctx.progress("downloading", 0);
  const limit = await ctx.comfy.maxUploadSize();
  // A folder of its own in ComfyUI's input folder: concurrent jobs with the same file names do not mix.
  const subfolder = `framefleet/${randomUUID()}`;
  const uploaded = new Map<string, string>();
  for (let i = 0; i < plan.inputs.length; i++) {
    const { name, url } = plan.inputs[i]!;
    const field = `${F}.input_urls[${JSON.stringify(name)}]`;
    const file = `input-${i}`;
    const { bytes } = await ctx.download(url, field, file);
    if (limit !== undefined && bytes > limit) {
      throw new RenderError("input_too_large", `${field}: ${bytes} bytes is over ComfyUI's upload limit of ${limit} bytes`);
    }
    ctx.progress("uploading", 1 + (4 * (i + 0.5)) / plan.inputs.length);
    const up = await ctx.comfy.upload(file, name, subfolder);
    uploaded.set(name, up.subfolder ? `${up.subfolder}/${up.name}` : up.name);
  }
  const { workflow, rewritten } = rewriteInputNames(plan.workflow, uploaded);
  ctx.log.info({ files: plan.inputs.length, subfolder, rewritten }, "comfyui inputs uploaded");
  return workflow;
}

export const comfyWorkflowTask: RenderTask<"comfyWorkflow", ComfyWorkflowPlan> = {
  field: F,
  plan: validateComfyWorkflow,
  async run(ctx, plan, output) {
    // Checked first: a wrong output format fails before anything runs.
    const encoding = chooseEncoding(output, ctx.capabilities.encoders);
    const workflow = await uploadInputs(ctx, plan);
    ctx.progress("queued", 5);
    let result;
    try {
      result = await ctx.comfy.run(workflow, (p) => ctx.progress(p.started ? "generating" : "queued", 5 + 85 * p.fraction));
    } catch (err) {
      throw comfyRunError(err, F);
    }
    const media = pickMedia(result.outputs, result.meta, plan.outputNodeId, F);
    ctx.log.info({ promptId: result.promptId, node: media.nodeId, kind: media.kind, files: media.files.length, cached: result.cached.length }, "comfyui output");
    const input = await prepareMedia(ctx, media, {
      fps: plan.fps,
      field: `${F}.workflow_json`,
      onFile: (done, total) => ctx.progress("downloading", 89 + done / total),
    });
    const run = await ctx.encode(buildFinalArgs(input, output, encoding), {
      expectedDurationSeconds: input.durationSeconds,
      percentFrom: 90,
      percentTo: 100,
    });
    // The input's length is known exactly (frames / rate, or the probed duration); ffmpeg's final out_time can lag
    // behind the last frames, so it is only the fallback.
    const duration = input.durationSeconds ?? run.outTimeSeconds ?? 0;
    return {
      durationSeconds: Math.round(duration * 1000) / 1000,
      width: run.outputSize?.width ?? input.width ?? 0,
      height: run.outputSize?.height ?? input.height ?? 0,
      codec: encoding.codec,
      encoder: encoding.encoder,
      contentType: encoding.contentType,
    };
  },
};
