import { test } from "node:test";
import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ComfyWorkflowTaskSchema, type ComfyWorkflowTask } from "@framefleet/gen/framefleet/v1/job_pb";
import { RenderError } from "../errors.ts";
import { MAX_WORKFLOW_BYTES, rewriteInputNames, validateComfyWorkflow } from "./comfy-workflow.ts";

const wf = {
  "1": { class_type: "LoadImage", inputs: { image: "photo.png" } },
  "2": { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: "out" } },
};
const task = (init: MessageInitShape<typeof ComfyWorkflowTaskSchema> = {}): ComfyWorkflowTask =>
  create(ComfyWorkflowTaskSchema, { workflowJson: JSON.stringify(wf), ...init });

function rejects(t: ComfyWorkflowTask, field: string, detail: RegExp): void {
  assert.throws(
    () => validateComfyWorkflow(t),
    (err: unknown) => {
      assert.ok(err instanceof RenderError, String(err));
      assert.equal(err.code, "invalid_input");
      assert.ok(err.message.startsWith(`${field}: `), err.message);
      assert.match(err.message, detail);
      return true;
    },
  );
}

test("a valid task: the parsed workflow, its inputs, the output node and the default frame rate", () => {
  const plan = validateComfyWorkflow(task({ inputUrls: { "photo.png": "https://media.example.com/p.png" }, outputNodeId: "2" }));
  assert.deepEqual(plan, { workflow: wf, inputs: [{ name: "photo.png", url: "https://media.example.com/p.png" }], outputNodeId: "2", fps: 8 });
  assert.equal(validateComfyWorkflow(task({ fps: 23.976 })).fps, 23.976);
  assert.equal(validateComfyWorkflow(task({ fps: 120 })).fps, 120);
});

test("workflow_json must be an API-format workflow of at most 2 MiB", () => {
  const f = "comfy_workflow.workflow_json";
  rejects(task({ workflowJson: "" }), f, /is required/);
  rejects(task({ workflowJson: "{nope" }), f, /is not valid JSON/);
  rejects(task({ workflowJson: "[1,2]" }), f, /must be a JSON object/);
  rejects(task({ workflowJson: "null" }), f, /must be a JSON object/);
  rejects(task({ workflowJson: "{}" }), f, /has no nodes/);
  rejects(task({ workflowJson: JSON.stringify({ nodes: [], links: [], version: 0.4 }) }), f, /UI \(graph\) format/);
  rejects(task({ workflowJson: JSON.stringify({ "1": { inputs: {} } }) }), f, /node "1" has no class_type/);
  rejects(task({ workflowJson: JSON.stringify({ "1": "EmptyImage" }) }), f, /node "1" must be an object/);
  rejects(task({ workflowJson: JSON.stringify({ "1": { class_type: "EmptyImage" } }) }), f, /node "1" \(EmptyImage\) has no inputs object/);
  rejects(task({ workflowJson: JSON.stringify({ "2": { class_type: "SaveImage", inputs: { images: ["9", 0] } } }) }), f, /node "2" \(SaveImage\) input "images" links to node "9", which is not in the workflow/);
  rejects(task({ workflowJson: JSON.stringify({ ["x".repeat(65)]: { class_type: "A", inputs: {} } }) }), f, /node id .* must be 1 to 64 characters/);
  const big = JSON.stringify({ "1": { class_type: "CLIPTextEncode", inputs: { text: "x".repeat(MAX_WORKFLOW_BYTES) } } });
  rejects(task({ workflowJson: big }), f, /bytes; at most 2097152 are accepted/);
});

test("output_node_id must be a node of the workflow; fps 0 or 1..120", () => {
  rejects(task({ outputNodeId: "7" }), "comfy_workflow.output_node_id", /node "7" is not in the workflow/);
  for (const fps of [0.5, 121, -1, Number.NaN, Infinity]) rejects(task({ fps }), "comfy_workflow.fps", /must be 0 \(default 8\) or between 1 and 120/);
});

test("input_urls: plain, safe file names and http(s) URLs", () => {
  for (const name of ["../x.png", "a/b.png", ".hidden", "a..b.png", "spa ce.png", "x".repeat(129), "", "é.png"]) {
    rejects(task({ inputUrls: { [name]: "https://e.example/x" } }), `comfy_workflow.input_urls[${JSON.stringify(name)}]`, /file name must be/);
  }
  rejects(task({ inputUrls: { "a.png": "ftp://e.example/x" } }), 'comfy_workflow.input_urls["a.png"]', /only http and https/);
  rejects(task({ inputUrls: { "a.png": "" } }), 'comfy_workflow.input_urls["a.png"]', /the URL is required/);
  const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`f${i}.png`, "https://e.example/x"]));
  rejects(task({ inputUrls: many }), "comfy_workflow.input_urls", /at most 32/);
  assert.equal(validateComfyWorkflow(task({ inputUrls: { "Clip_01-final.v2.MP4": "http://e.example/c" } })).inputs.length, 1);
});

test("uploaded names are rewritten where an input value is exactly the name, and nowhere else", () => {
  const { workflow, rewritten } = rewriteInputNames(
    {
      "1": { class_type: "LoadImage", inputs: { image: "photo.png" } },
      "2": { class_type: "CLIPTextEncode", inputs: { text: "a photo.png of a cat" } },
      "3": { class_type: "LoadVideo", inputs: { file: "clip.mp4" } },
    },
    new Map([["photo.png", "framefleet/j1/photo.png"], ["clip.mp4", "framefleet/j1/clip.mp4"]]),
  );
  assert.equal(rewritten, 2);
  assert.equal(workflow["1"]!.inputs.image, "framefleet/j1/photo.png");
  assert.equal(workflow["2"]!.inputs.text, "a photo.png of a cat");
  assert.equal(workflow["3"]!.inputs.file, "framefleet/j1/clip.mp4");
});
