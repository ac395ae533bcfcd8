// The render tasks this gpu-render runs, by their JobSpec oneof case.
import type { RenderTask, TaskCase } from "../task.ts";
import { captionTask } from "./caption.ts";

// Each entry pairs a task's plan type with its run; the registry erases it (plans are opaque to the server).
export const tasks: Partial<Record<TaskCase, RenderTask<TaskCase, unknown>>> = {
  caption: captionTask as RenderTask<TaskCase, unknown>,
};
