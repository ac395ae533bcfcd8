// Turning a RenderRequest into a validated plan, before any work is done.
import type { RenderRequest } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { invalidInput, RenderError } from "./errors.ts";
import { validateOutput, type OutputPlan } from "./output-options.ts";
import { validateCaption, type CaptionPlan } from "./tasks/caption.ts";

export interface RenderPlan {
  jobId: string;
  attempt: number;
  task: { kind: "caption"; caption: CaptionPlan };
  output: OutputPlan;
}

const taskFields: Record<string, string> = {
  imageToVideo: "image_to_video",
  addAudio: "add_audio",
  comfyWorkflow: "comfy_workflow",
  sceneVideo: "scene_video",
};

export function planRender(req: RenderRequest): RenderPlan {
  if (req.jobId.length > 200) throw invalidInput("job_id", "is longer than 200 characters");
  const spec = req.spec;
  if (!spec) throw invalidInput("spec", "is required");
  switch (spec.task.case) {
    case "caption":
      return {
        jobId: req.jobId,
        attempt: req.attempt,
        task: { kind: "caption", caption: validateCaption(spec.task.value) },
        output: validateOutput(spec.output),
      };
    case undefined:
      throw invalidInput("spec.task", "exactly one task must be set");
    default:
      throw new RenderError(
        "unsupported_task",
        `spec.${taskFields[spec.task.case] ?? spec.task.case}: this gpu-render does not implement this task yet (only caption)`,
      );
  }
}
