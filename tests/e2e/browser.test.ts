import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { launchChromium } from "./chromium.js";
import { startTestDaemon, type TestDaemon } from "./harness.js";

/**
 * A page and a WebSocket echo, served by Node's standard library inside the sandbox: the page opens a
 * WebSocket back to its own host, sends "hello" and shows what comes back.
 */
const APP = `
const http = require("http"), crypto = require("crypto");
const page = \`<!doctype html><title>stasis browser check</title><body data-ws="pending"><script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => { document.body.dataset.ws = "open"; ws.send("hello"); };
ws.onmessage = (e) => { document.body.dataset.ws = "echo:" + e.data; };
ws.onerror = () => { document.body.dataset.ws = "error"; };
</script></body>\`;
const server = http.createServer((req, res) => { res.writeHead(200, { "content-type": "text/html" }); res.end(page); });
server.on("upgrade", (req, socket) => {
  // As WebSocket libraries do: a reset or closed peer closes the socket.
  socket.on("error", () => socket.destroy());
  socket.on("end", () => socket.end());
  const accept = crypto.createHash("sha1").update(req.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  socket.write("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + "\\r\\n\\r\\n");
  socket.on("data", (frame) => {
    // A client's small text frame: FIN+opcode, masked length (< 126), 4-byte mask, payload.
    if ((frame[0] & 0x0f) !== 1) return;
    const len = frame[1] & 0x7f, mask = frame.subarray(2, 6);
    const text = Buffer.from(frame.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4]));
    socket.write(Buffer.concat([Buffer.from([0x81, text.length]), text]));
  });
});
server.listen(3000, "0.0.0.0");
`;

describe("a browser opens a sandbox's preview URL (headless Chromium, gvisor)", () => {
  let daemon: TestDaemon;
  let sandbox: Sandbox;
  let browser: Browser;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    sandbox = await Sandbox.create({ runtime: "gvisor", ...daemon.conn });
    await sandbox.files.write("/srv/app.js", APP);
    await sandbox.commands.start("exec node /srv/app.js", { timeoutMs: 0 });
    for (let i = 0; i < 100 && !(await sandbox.ports()).some((p) => p.port === 3000); i++) await new Promise((r) => setTimeout(r, 100));
    browser = await launchChromium();
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await sandbox?.kill().catch(() => {});
    await daemon?.destroy();
  });

  it("a signed link sets the cookie, the page loads and its WebSocket connects; again after a hibernation", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // Private sandbox: without the link's cookie the browser is refused.
    const refused = await page.goto(await sandbox.getUrl(3000));
    expect(refused?.status()).toBe(401);
    const signed = await sandbox.signUrl(3000, 600);
    const response = await page.goto(signed.url);
    expect(response?.status()).toBe(200);
    expect(new URL(page.url()).searchParams.has("stasis_preview")).toBe(false);
    await page.waitForFunction('document.body.dataset.ws === "echo:hello"', undefined, { timeout: 15_000 });

    await sandbox.hibernate();
    expect((await sandbox.refresh()).state).toBe("hibernated");
    const again = await page.reload();
    // The WebSocket open at the checkpoint was reset first (InboundConnections): the port answers again.
    expect(`${again?.status()} ${again?.status() === 200 ? "" : await again?.text()}`).toBe("200 ");
    // On a timeout, say where the page's WebSocket got to (pending, open, error): it failed so once in a full run.
    await page.waitForFunction('document.body.dataset.ws === "echo:hello"', undefined, { timeout: 30_000 }).catch(async (err: Error) => {
      throw new Error(`${err.message}; the page's WebSocket: ${await page.evaluate("document.body.dataset.ws").catch(() => "unknown")}`, { cause: err });
    });
    await context.close();
  }, 90_000);
});
