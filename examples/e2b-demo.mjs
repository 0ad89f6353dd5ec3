// The E2B drop-in: the unmodified `e2b` SDK from npm, pointed at this daemon by two variables.
// Run after `sudo ./scripts/up.sh` (which runs this too): node examples/e2b-demo.mjs
// In your own code: `import { Sandbox } from "e2b"` with E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL set.
import { E2bKeys } from "@stasis/sdk";

const say = (msg) => process.stderr.write(`\x1b[35m${msg}\x1b[0m\n`);
const url = process.env.STASIS_API_URL ?? "http://127.0.0.1:7070";

// A key for this demo only (`stasis e2b key create` for yours); revoked at the end.
const key = await E2bKeys.create({ name: "e2b-demo" });
process.env.E2B_API_KEY = key.key;
process.env.E2B_API_URL = url;
process.env.E2B_SANDBOX_URL = url;
// The repository pins the published SDK as e2b-2.51 (and e2b-2.45) for its tests.
const { Sandbox } = await import("e2b-2.51");

const started = performance.now();
const sbx = await Sandbox.create();
say(`e2b SDK: Sandbox.create() -> ${sbx.sandboxId} in ${Math.round(performance.now() - started)} ms`);
try {
  const r = await sbx.commands.run("echo $((6*7)) from $(whoami) in $(pwd)");
  say(`e2b SDK: commands.run -> ${r.stdout.trim()}`);
  await sbx.files.write("notes.txt", "written through the e2b SDK\n");
  say(`e2b SDK: files.read -> ${(await sbx.files.read("notes.txt")).trim()}`);
  const counter = await sbx.commands.run("n=0; while true; do n=$((n+1)); echo $n > /tmp/n; sleep 0.1; done", { background: true, timeoutMs: 0 });
  await new Promise((r) => setTimeout(r, 500));
  await sbx.pause();
  say(`e2b SDK: pause() -> isRunning() ${await sbx.isRunning()}, state ${(await sbx.getInfo()).state}`);
  const again = await Sandbox.connect(sbx.sandboxId);
  const alive = (await again.commands.list()).some((p) => p.pid === counter.pid);
  say(`e2b SDK: Sandbox.connect() -> running again; the counter (pid ${counter.pid}) is ${alive ? "still alive" : "gone"}, at ${(await again.files.read("/tmp/n")).trim()}`);
} finally {
  await sbx.kill();
  await E2bKeys.revoke(key.id);
  say(`e2b SDK: killed ${sbx.sandboxId}`);
}
