// Shapes of ComfyUI's HTTP and WebSocket API (v0.3.64) as the client and the fake server use them. See
// shared/reference/comfyui-api.md (sections cited as "ref §n") and the recordings in
// shared/reference/recordings/comfyui/.

/** A link from an input to another node's output: [source node id, output index]. */
export type ApiLink = [string, number];

export interface ApiNode {
  class_type: string;
  inputs: Record<string, unknown>;
  _meta?: { title?: string };
}

/** A workflow in ComfyUI's API ("prompt") format: node id -> node. */
export type ApiWorkflow = Record<string, ApiNode>;

/** A file a node wrote, as listed in `executed` messages and history outputs (ref §5). */
export interface ComfyFileRef {
  filename: string;
  subfolder: string;
  /** "output", "temp" or "input". */
  type: string;
  /** VideoHelperSuite only: "video/h264-mp4", "image/gif", ... */
  format?: string;
  /** VideoHelperSuite only. */
  frame_rate?: number;
}

/** One item of a validation error list (ref §3). */
export interface ComfyValidationError {
  type: string;
  message: string;
  details: string;
  extra_info?: Record<string, unknown>;
}

export interface ComfyNodeError {
  errors: ComfyValidationError[];
  dependent_outputs: string[];
  class_type: string;
}

/** The body of a 400 from POST /prompt. */
export interface ComfyPromptErrorBody {
  error: ComfyValidationError | string;
  node_errors: Record<string, ComfyNodeError>;
}

export interface ComfyPromptAccepted {
  prompt_id: string;
  number: number;
  node_errors: Record<string, ComfyNodeError>;
}

/** `execution_error` data (ref §9.2), also stored in history status messages. */
export interface ComfyExecutionErrorData {
  prompt_id: string;
  node_id: string;
  node_type: string;
  executed: string[];
  exception_message: string;
  exception_type: string;
  traceback: string[];
  current_inputs: Record<string, unknown>;
  current_outputs: string[];
  timestamp: number;
}

export interface ComfyInterruptedData {
  prompt_id: string;
  node_id: string;
  node_type: string;
  executed: string[];
  timestamp: number;
}

export interface ComfyHistoryMeta {
  node_id: string;
  display_node: string;
  parent_node: string | null;
  real_node_id: string;
}

/** One entry of GET /history/{id} (ref §4). */
export interface ComfyHistoryEntry {
  prompt: [number, string, ApiWorkflow, Record<string, unknown>, string[]];
  outputs: Record<string, Record<string, unknown>>;
  status: {
    status_str: "success" | "error";
    completed: boolean;
    messages: Array<[string, Record<string, unknown>]>;
  };
  meta: Record<string, ComfyHistoryMeta>;
}

/** GET /queue items have the history `prompt` shape. */
export type ComfyQueueItem = [number, string, ApiWorkflow, Record<string, unknown>, string[]];

export interface ComfyQueue {
  queue_running: ComfyQueueItem[];
  queue_pending: ComfyQueueItem[];
}

/** A WebSocket JSON message. */
export interface ComfyWsMessage {
  type: string;
  data: Record<string, unknown>;
}

export function isLink(v: unknown): v is ApiLink {
  return Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "number" && Number.isInteger(v[1]);
}

/**
 * Every file a history `outputs` entry lists: each key whose value is a list of objects with a string `filename`
 * (`images`, `gifs`, `audio`, ...); `animated` (a list of booleans) and other keys are skipped (ref §5).
 */
export function outputFiles(nodeOutput: Record<string, unknown>): Array<ComfyFileRef & { key: string }> {
  const files: Array<ComfyFileRef & { key: string }> = [];
  for (const [key, value] of Object.entries(nodeOutput)) {
    if (!Array.isArray(value)) continue;
    for (const item of value) {
      if (typeof item !== "object" || item === null) continue;
      const o = item as Record<string, unknown>;
      if (typeof o.filename !== "string" || o.filename === "") continue;
      const ref: ComfyFileRef & { key: string } = {
        key,
        filename: o.filename,
        subfolder: typeof o.subfolder === "string" ? o.subfolder : "",
        type: typeof o.type === "string" ? o.type : "output",
      };
      if (typeof o.format === "string") ref.format = o.format;
      if (typeof o.frame_rate === "number") ref.frame_rate = o.frame_rate;
      files.push(ref);
    }
  }
  return files;
}

/** `animated: [true]` marks core video/animated-image nodes' output (ref §5). */
export function isAnimatedOutput(nodeOutput: Record<string, unknown>): boolean {
  const a = nodeOutput.animated;
  return Array.isArray(a) && a.some((x) => x === true);
}
