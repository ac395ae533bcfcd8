// Turning a RenderRequest into a validated plan, before any work is done.
import type { RenderRequest } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { invalidInput, RenderError } from "./errors.ts";
import { validateOutput, type OutputPlan } from "./output-options.ts";
import type { RenderTask, TaskCase } from "./task.ts";
import { tasks } from "./tasks/index.ts";

export interface RenderPlan {
  jobId: string;
  attempt: number;
  kind: TaskCase;
  /** The task's own validated plan (opaque here; only its task reads it). */
  task: unknown;
  runner: RenderTask<TaskCase, unknown>;
  output: OutputPlan;
}

const taskFields: Record<TaskCase, string> = {
  caption: "caption",
  imageToVideo: "image_to_video",
  addAudio: "add_audio",
  comfyWorkflow: "comfy_workflow",
  sceneVideo: "scene_video",
};

/** The tasks a gpu-render runs, by their JobSpec case (see tasks/index.ts). */
export type TaskRegistry = Partial<Record<TaskCase, RenderTask<TaskCase, unknown>>>;

/** `registry` is the tasks this gpu-render runs; a spec with another task is unsupported_task. */
export function planRender(req: RenderRequest, registry: TaskRegistry = tasks): RenderPlan {
  if (req.jobId.length > 200) throw invalidInput("job_id", "is longer than 200 characters");
  const spec = req.spec;
  if (!spec) throw invalidInput("spec", "is required");
  const kind = spec.task.case;
  if (kind === undefined) throw invalidInput("spec.task", "exactly one task must be set");
  const runner = registry[kind];
  if (!runner) {
    const available = Object.keys(registry).map((k) => taskFields[k as TaskCase]).join(", ");
    throw new RenderError("unsupported_task", `spec.${taskFields[kind]}: this gpu-render does not run this task (it runs: ${available})`);
  }
  const output = validateOutput(spec.output);
  return { jobId: req.jobId, attempt: req.attempt, kind, task: runner.plan(spec.task.value), runner, output };
}
