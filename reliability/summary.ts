// Prints the reliability suite's totals from the counts its tests recorded (run after the tests, by scripts/run.sh
// and by this workspace's test/soak scripts). Exits non-zero when any breach was recorded.
import { readCounts, type CountKind } from "./counts.ts";

const counts = readCounts();
if (counts.length === 0) {
  console.log("reliability: no counts recorded (were the reliability tests run?)");
  process.exit(0);
}
const label: Record<CountKind, [string, string]> = {
  fault: ["faults injected", "survived"],
  input: ["inputs tried", "handled"],
  access: ["refusals checked", "refused correctly"],
  load: ["requests made", "answered ok"],
};
console.log("\nreliability suite:");
console.log("| kind | what | tried | handled | breaches | notes |");
console.log("| --- | --- | ---: | ---: | ---: | --- |");
for (const c of counts) {
  const notes = c.notes ? Object.entries(c.notes).map(([k, v]) => `${k}=${v}`).join(", ") : "";
  console.log(`| ${c.kind} | ${c.name} | ${c.tried} | ${c.handled} | ${c.breaches} | ${notes} |`);
}
let breaches = 0;
for (const kind of Object.keys(label) as CountKind[]) {
  const of = counts.filter((c) => c.kind === kind);
  if (of.length === 0) continue;
  const tried = of.reduce((s, c) => s + c.tried, 0);
  const handled = of.reduce((s, c) => s + c.handled, 0);
  const b = of.reduce((s, c) => s + c.breaches, 0);
  breaches += b;
  console.log(`${label[kind][0]}: ${tried}, ${label[kind][1]}: ${handled}, breaches: ${b}`);
}
console.log(`breaches in all: ${breaches}`);
process.exit(breaches === 0 ? 0 : 1);
