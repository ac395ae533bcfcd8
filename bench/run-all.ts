// `npm run bench`: every "bench:*" script of this package, one after another, in the order package.json lists them.
// A benchmark that fails is reported and the rest still run; the exit status says whether any failed (never speed).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export function benchScripts(scripts: Record<string, string>): string[] {
  return Object.keys(scripts).filter((name) => name.startsWith("bench:"));
}

if (import.meta.main) {
  const pkg = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "package.json"), "utf8")) as { scripts: Record<string, string> };
  const failed: string[] = [];
  for (const name of benchScripts(pkg.scripts)) {
    console.log(`\n=== ${name} ===`);
    const t0 = performance.now();
    const r = spawnSync("npm", ["run", "--silent", name], { cwd: import.meta.dirname, stdio: "inherit" });
    console.log(`=== ${name}: ${r.status === 0 ? "done" : `FAILED (exit ${r.status ?? r.signal})`} in ${((performance.now() - t0) / 1000).toFixed(0)} s ===`);
    if (r.status !== 0) failed.push(name);
  }
  console.log(failed.length ? `\nfailed: ${failed.join(", ")}` : "\nall benchmarks ran; results in bench/results/*.json");
  process.exit(failed.length ? 1 : 0);
}
