// The agent-style tour: create a gVisor sandbox, run Python in it, read and write its files, hibernate
// it with a process running and wake it, destroy it.
// Run after `sudo ./scripts/up.sh` (which runs this too): node examples/demo.mjs
import { Sandbox } from "@stasis/sdk";

const say = (msg) => process.stderr.write(`\x1b[36m${msg}\x1b[0m\n`);

const started = performance.now();
const sandbox = await Sandbox.create({ metadata: { purpose: "demo" } });
say(`created ${sandbox.id} (${sandbox.info.runtime}) in ${Math.round(performance.now() - started)} ms`);
try {
  const py = await sandbox.commands.run(`python3 -c "import platform, sys; print('python', sys.version.split()[0], 'on', platform.uname().release)"`);
  say("python in the sandbox says:");
  process.stdout.write(py.stdout);

  await sandbox.files.write("/home/user/hello.py", "import json\nprint(json.dumps({'sum': sum(range(10))}))\n");
  const run = await sandbox.commands.run("python3 /home/user/hello.py", { user: "user" });
  say(`wrote /home/user/hello.py and ran it as 'user': ${run.stdout.trim()}`);

  say("streaming a command:");
  for await (const event of sandbox.commands.stream("for i in 1 2 3; do echo tick $i; sleep 0.2; done")) {
    if (event.type === "stdout") process.stdout.write(event.data);
    if (event.type === "exit") say(`exit ${event.exitCode} after ${event.durationMs} ms`);
  }

  const t0 = performance.now();
  await sandbox.commands.run("echo hi");
  say(`'echo hi' round trip: ${(performance.now() - t0).toFixed(1)} ms`);

  const listing = await sandbox.files.list("/home/user");
  say(`files in /home/user: ${listing.entries.map((e) => e.name).join(", ")}`);
  // Standby: a background counter keeps its memory across a trip to disk and back.
  const counter = await sandbox.commands.start(`python3 -c "import time
n = 0
while True:
    n += 1
    open('/tmp/n', 'w').write(str(n))
    time.sleep(0.1)"`);
  // Let it count a little; on a slow host (software emulation) python may take seconds to start.
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < 300 && !(await sandbox.files.exists("/tmp/n")); i++) await new Promise((r) => setTimeout(r, 100));
  const before = (await sandbox.files.readText("/tmp/n")).trim();
  const h0 = performance.now();
  await sandbox.hibernate();
  say(`hibernated (memory on disk, no CPU, no RAM) in ${Math.round(performance.now() - h0)} ms; counter was at ${before}`);
  const w0 = performance.now();
  const after = (await sandbox.files.readText("/tmp/n")).trim();
  say(`a file read woke it in ${Math.round(performance.now() - w0)} ms; the same process (pid ${counter.pid}) counts on: ${after}`);
  await counter.kill();

  const hostCheck = await sandbox.commands.run("cat /etc/hostname /var/lib/stasis/api-key 2>&1 | head -2");
  say(`the sandbox cannot see the host: ${hostCheck.stdout.trim().split("\n").pop()}`);
} finally {
  await sandbox.kill();
  say(`destroyed ${sandbox.id}`);
}
