import { it } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { startTestDaemon } from "./harness.js";

const APP = `require("http").createServer((req, res) => res.end("ok " + req.url)).listen(8000, "0.0.0.0");`;
it("exp", async () => {
  const daemon = await startTestDaemon();
  try {
    const sandbox = await Sandbox.create({ runtime: "gvisor", idleTimeoutMs: 0, ...daemon.conn });
    await sandbox.setPreview({ public: true });
    await sandbox.files.write("/srv/app.js", APP);
    await sandbox.commands.start("exec node /srv/app.js", { timeoutMs: 0 });
    for (let i = 0; i < 100 && !(await sandbox.ports()).some((p) => p.port === 8000); i++) await new Promise((r) => setTimeout(r, 100));
    const url = await sandbox.getUrl(8000);
    const get = (p: string) => fetch(`${url}${p}`, { signal: AbortSignal.timeout(5000) }).then(async (r) => `${r.status} ${await r.text()}`, (e: Error) => e.message);
    await Promise.all(Array.from({ length: Number(process.env.N ?? 50) }, (_, i) => get(`/c${i}`)));
    console.log("after burst", (await sandbox.commands.run("cat /proc/net/tcp | wc -l")).stdout);
    if (process.env.PAUSE) { await sandbox.pause(); await new Promise((r) => setTimeout(r, 1000)); console.log("paused req", await get("/p")); }
    await sandbox.hibernate();
    await new Promise((r) => setTimeout(r, 1000));
    console.log("hib req", await get("/h"));
    console.log("tcp", (await sandbox.commands.run("cat /proc/net/tcp")).stdout);
    console.log("again", await get("/h2"));
    await sandbox.kill();
  } finally {
    console.log(daemon.logs.join("").split("\n").filter((l) => /reset|restored|hibernated/.test(l)).join("\n").slice(-1500));
    await daemon.destroy();
  }
}, 120_000);
