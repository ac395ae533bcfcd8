// The render tasks this gpu-render runs, by their JobSpec oneof case.
import type { RenderTask, TaskCase } from "../task.ts";
import { addAudioTask } from "./add-audio.ts";
import { captionTask } from "./caption.ts";
import { comfyWorkflowTask } from "./comfy-workflow.ts";
import { imageToVideoTask } from "./image-to-video.ts";
import { sceneVideoTask } from "./scene-video.ts";

// Each entry pairs a task's plan type with its run; the registry erases it (plans are opaque to the server).
export const tasks: Partial<Record<TaskCase, RenderTask<TaskCase, unknown>>> = {
  caption: captionTask as RenderTask<TaskCase, unknown>,
  imageToVideo: imageToVideoTask as RenderTask<TaskCase, unknown>,
  addAudio: addAudioTask as RenderTask<TaskCase, unknown>,
  comfyWorkflow: comfyWorkflowTask as RenderTask<TaskCase, unknown>,
  sceneVideo: sceneVideoTask as RenderTask<TaskCase, unknown>,
};
