#!/usr/bin/env node
import { run } from "./run.js";

// A closed pipe on stdout (`stasis files get ... | head`) is the reader's choice, not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

// exitCode rather than exit(): output still queued for a pipe gets written first.
process.exitCode = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
