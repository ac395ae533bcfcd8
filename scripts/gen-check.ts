// Fails when gen/ differs from what `buf generate` makes of proto/ now.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "framefleet-gen-"));
try {
  fs.cpSync(path.join(root, "proto"), path.join(tmp, "proto"), { recursive: true });
  fs.copyFileSync(path.join(root, "buf.yaml"), path.join(tmp, "buf.yaml"));
  fs.copyFileSync(path.join(root, "buf.gen.yaml"), path.join(tmp, "buf.gen.yaml"));
  const bin = path.join(root, "node_modules/.bin");
  execFileSync(path.join(bin, "buf"), ["generate"], {
    cwd: tmp,
    stdio: "inherit",
    env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}` },
  });
  const list = (dir: string): string[] =>
    fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort() : [];
  const want = list(path.join(tmp, "gen/es"));
  const have = list(path.join(root, "gen/es"));
  const stale = [
    ...want.filter((f) => !have.includes(f) || !fs.readFileSync(path.join(tmp, "gen/es", f)).equals(fs.readFileSync(path.join(root, "gen/es", f)))),
    ...have.filter((f) => !want.includes(f)),
  ];
  if (stale.length) {
    console.error(`gen/ is stale (${stale.join(", ")}): run \`npm run gen\` and commit the result.`);
    process.exit(1);
  }
  console.log(`gen/ is up to date (${want.length} files)`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
