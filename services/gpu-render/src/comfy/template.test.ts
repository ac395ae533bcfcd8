import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { HttpComfyClient } from "./client.ts";
import { startFakeComfy, type FakeComfyUI } from "./fake-server.ts";
import {
  DEFAULT_TEMPLATE,
  fillTemplate,
  framesFor,
  generationSize,
  listTemplates,
  loadTemplate,
  parseTemplate,
  type TemplateValues,
} from "./template.ts";

const HOSTILE = [
  'a "quoted" prompt',
  'ends with "}',
  '"}, "3": {"class_type": "SaveImage", "inputs": {}}, "x": {"',
  "back\\slash \\\" and \\u0022 and \\n literally",
  "{{seed}} and {{negative_prompt}} stay as they are",
  "{{positive_prompt}}",
  "line one\nline two\r\n\ttabbed",
  "unicode: 日本語 🎬 ÷ \u2028 \u2029",
  "</script><script>alert(1)</script>",
  "'; DROP TABLE prompts; --",
  "%s %d ${env} $(id) `id`",
];

const values = (positive: string, negative = "neg"): TemplateValues => ({
  positive_prompt: positive,
  negative_prompt: negative,
  seed: 123,
  width: 64,
  height: 48,
  frames: 5,
  fps: 16,
  filename_prefix: "framefleet/test/scene-0",
});

let fake: FakeComfyUI;
before(async () => {
  fake = await startFakeComfy({ nodeDelayMs: 1, stepDelayMs: 0 });
});
after(async () => {
  await fake.close();
});

test("every shipped template parses; the default exists and uses all its placeholders", () => {
  const names = listTemplates();
  assert.ok(names.includes(DEFAULT_TEMPLATE), names.join(", "));
  for (const name of names) assert.ok(loadTemplate(name), name);
  const t = loadTemplate(DEFAULT_TEMPLATE)!;
  assert.deepEqual([...t.uses.keys()].sort(), ["filename_prefix", "fps", "frames", "height", "negative_prompt", "positive_prompt", "seed", "width"]);
  assert.equal(t.meta.fps, 16);
  assert.equal(t.workflow[t.meta.outputNode]!.class_type, "SaveVideo");
  assert.equal(loadTemplate("no-such-template"), undefined);
  assert.equal(loadTemplate("../templates/text2video-default"), undefined, "names cannot leave the folder");
});

test("filling substitutes typed values into the parsed workflow and leaves the template untouched", () => {
  const t = loadTemplate(DEFAULT_TEMPLATE)!;
  const before = JSON.stringify(t.workflow);
  const wf = fillTemplate(t, values("a fox"));
  assert.equal(JSON.stringify(t.workflow), before);
  assert.equal(wf["6"]!.inputs.text, "a fox");
  assert.equal(wf["7"]!.inputs.text, "neg");
  assert.equal(wf["3"]!.inputs.seed, 123);
  assert.deepEqual([wf["40"]!.inputs.width, wf["40"]!.inputs.height, wf["40"]!.inputs.length], [64, 48, 5]);
  assert.equal(wf["49"]!.inputs.fps, 16);
  assert.equal(wf["50"]!.inputs.filename_prefix, "framefleet/test/scene-0");
  assert.ok(!JSON.stringify(wf).includes("{{"), "no placeholder is left");
});

test("hostile prompt text comes out verbatim in the workflow ComfyUI receives, and changes nothing else", async () => {
  const t = loadTemplate(DEFAULT_TEMPLATE)!;
  const client = new HttpComfyClient({ baseUrl: fake.url, pollIntervalMs: 100 });
  const reference = fillTemplate(t, values("plain"));
  for (const [i, text] of HOSTILE.entries()) {
    const wf = fillTemplate(t, { ...values(text, `not ${text}`), seed: 1000 + i });
    assert.equal(wf["6"]!.inputs.text, text);
    assert.equal(wf["7"]!.inputs.text, `not ${text}`);
    assert.deepEqual(Object.keys(wf), Object.keys(reference));
    for (const id of Object.keys(wf)) assert.equal(wf[id]!.class_type, reference[id]!.class_type);
    assert.deepEqual(wf["3"]!.inputs.positive, ["6", 0]);
  }
  // Through the wire: the fake records what POST /prompt delivered.
  const wf = fillTemplate(t, values(HOSTILE.join(" | "), HOSTILE[2]!));
  const result = await client.run(wf, { signal: new AbortController().signal });
  const sent = fake.submitted.find((s) => s.promptId === result.promptId)!.prompt;
  assert.equal(sent["6"]!.inputs.text, HOSTILE.join(" | "));
  assert.equal(sent["7"]!.inputs.text, HOSTILE[2]);
  assert.deepEqual(sent, wf);
  assert.ok(result.outputs["50"], "the filled template runs");
});

test("templates with partial, unknown or missing placeholders, or a bad output node, are refused", () => {
  const base = JSON.parse(JSON.stringify({ framefleet_template: {}, workflow: {} })) as Record<string, Record<string, unknown>>;
  const doc = (workflow: unknown, meta: Record<string, unknown> = {}) =>
    JSON.stringify({
      ...base,
      framefleet_template: { fps: 8, width: 64, height: 64, frames: { min: 1, max: 9 }, output_node: "2", ...meta },
      workflow,
    });
  const good = {
    "1": { class_type: "CLIPTextEncode", inputs: { text: "{{positive_prompt}}" } },
    "2": { class_type: "SaveVideo", inputs: { seed: "{{seed}}", length: "{{frames}}", filename_prefix: "{{filename_prefix}}", images: ["1", 0] } },
  };
  assert.ok(parseTemplate("ok", doc(good)));
  const variants: Array<[unknown, RegExp, Record<string, unknown>?]> = [
    [{ ...good, "1": { class_type: "CLIPTextEncode", inputs: { text: "a {{positive_prompt}}" } } }, /is not one of the placeholders/],
    [{ ...good, "3": { class_type: "X", inputs: { v: "{{nope}}" } } }, /"\{\{nope\}\}" is not one of the placeholders/],
    [{ ...good, "1": { class_type: "CLIPTextEncode", inputs: { text: "fixed" } } }, /does not use \{\{positive_prompt\}\}/],
    [good, /output_node "9" is not a node/, { output_node: "9" }],
    [{ ...good, "3": { class_type: "X", inputs: { a: ["7", 0] } } }, /links to missing node 7/],
    [good, /fps must be a positive integer/, { fps: 0 }],
  ];
  for (const [wf, re, meta] of variants) assert.throws(() => parseTemplate("bad", doc(wf, meta)), re);
});

test("frame counts follow the template's rule (4k+1, 5..81 at 16 fps); sizes fit and round to 16", () => {
  const { meta } = loadTemplate(DEFAULT_TEMPLATE)!;
  assert.deepEqual([0.1, 0.25, 1, 1.5, 2, 5, 5.1, 30].map((s) => framesFor(meta, s)), [5, 5, 17, 25, 33, 81, 81, 81]);
  assert.deepEqual(generationSize(meta, { width: 0, height: 0 }), { width: 832, height: 480 });
  assert.deepEqual(generationSize(meta, { width: 128, height: 96 }), { width: 128, height: 96 });
  assert.deepEqual(generationSize(meta, { width: 1920, height: 1080 }), { width: 1280, height: 720 });
  assert.deepEqual(generationSize(meta, { width: 0, height: 240 }), { width: 416, height: 240 });
  assert.deepEqual(generationSize(meta, { width: 100, height: 0 }), { width: 96, height: 64 });
});
