import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { buildOpenApi } from "./build-openapi.js";

// Usage: write-openapi.js OUT [--check]. With --check, exits 1 when OUT differs from the generated document.
const [out, flag] = process.argv.slice(2);
if (!out) {
  console.error("usage: write-openapi.js OUT [--check]");
  process.exit(2);
}
const text = `${JSON.stringify(buildOpenApi(), null, 2)}\n`;
if (flag === "--check") {
  let current = "";
  try {
    current = readFileSync(out, "utf8");
  } catch {
    /* missing counts as drift */
  }
  if (current !== text) {
    console.error(`${out} is out of date with the zod schemas: run \`npm run openapi\` and commit it.`);
    process.exit(1);
  }
  console.error(`${out} matches the schemas`);
} else {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, text);
  console.error(`wrote ${out}`);
}
