import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { launchChromium } from "./chromium.js";
import { REPO, startTestDaemon, type TestDaemon } from "./harness.js";

/** A one-line page on port 3000, for the preview link. */
const SERVER = `require("http").createServer((q, s) => s.end("preview-ok")).listen(3000, "0.0.0.0")`;
/** STASIS_CONSOLE_SCREENSHOTS=docs writes the main pages' screenshots into that folder (for the README). */
const SHOTS = process.env.STASIS_CONSOLE_SCREENSHOTS;

describe("the web console in headless Chromium (gvisor)", () => {
  let daemon: TestDaemon;
  let browser: Browser;
  let page: Page;
  const cspViolations: string[] = [];
  const templateName = `console-${randomBytes(3).toString("hex")}`;

  const shot = async (name: string) => {
    if (!SHOTS) return;
    mkdirSync(join(REPO, SHOTS), { recursive: true });
    await page.screenshot({ path: join(REPO, SHOTS, `console-${name}.png`) });
  };
  const row = (id: string) => page.locator(`tr[data-id="${id}"]`);

  beforeAll(async () => {
    daemon = await startTestDaemon();
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
    page = await context.newPage();
    page.on("console", (m) => {
      if (/Content[- ]Security[- ]Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    if (daemon) await fetch(`${daemon.url}/v1/templates/${templateName}`, { method: "DELETE", headers: { authorization: `Bearer ${daemon.apiKey}` } }).catch(() => {});
    await daemon?.destroy();
  });

  it("opens with the key, creates a sandbox, types in its terminal (woken by a key after a hibernation), moves files, follows a process log, previews a port, charts it, pauses it", async () => {
    // / redirects to the console; the key field has focus, Enter submits (keyboard only).
    await page.goto(`${daemon.url}/`);
    expect(new URL(page.url()).pathname).toBe("/console/");
    await page.keyboard.type("wrong-key");
    await page.keyboard.press("Enter");
    await page.getByText(/Refused: missing or wrong API key/).waitFor();
    await page.getByLabel("API key").fill(daemon.apiKey);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Sandboxes" }).waitFor();

    await page.getByLabel("Runtime").selectOption("gvisor");
    await page.getByRole("button", { name: "Create sandbox" }).click();
    await page.getByText(/^Created sbx_/).waitFor({ timeout: 60_000 });
    const id = (await page.getByText(/^Created sbx_/).textContent())!.replace("Created ", "");
    await row(id).and(page.locator('[data-state="running"]')).waitFor();
    const sandbox = await Sandbox.connect(id, daemon.conn);
    await sandbox.commands.start(`exec node -e '${SERVER}'`, { timeoutMs: 0 });
    await shot("sandboxes");

    // The terminal: keystrokes over the WebSocket, the shell's output back in xterm.js.
    await page.getByRole("link", { name: id }).click();
    await page.getByText("Connected").waitFor({ timeout: 30_000 });
    await page.locator(".xterm").click();
    await page.keyboard.type("echo console-$((6*7))\n");
    await page.locator(".xterm-rows").getByText("console-42", { exact: true }).waitFor({ timeout: 20_000 });
    await shot("terminal");
    // A hibernation closes the terminal's socket; the next key wakes the sandbox and the same shell answers.
    await page.locator(".xterm").click();
    // The shell must have the variable before the checkpoint: keys still in flight would be lost with the socket.
    await page.keyboard.type("kept=21; echo set-$kept\n");
    await page.locator(".xterm-rows").getByText("set-21", { exact: true }).waitFor({ timeout: 20_000 });
    await sandbox.hibernate();
    await page.getByText("The sandbox hibernated: press a key to wake it and reconnect").waitFor({ timeout: 30_000 });
    await page.locator(".xterm").click();
    await page.keyboard.type("echo back-$((kept*2))\n");
    await page.locator(".xterm-rows").getByText("back-42", { exact: true }).waitFor({ timeout: 30_000 });
    expect((await sandbox.refresh()).state).toBe("running");
    // Tab stays in the shell; Shift+Tab leaves the terminal (no keyboard trap).
    await page.keyboard.press("Shift+Tab");
    expect(await page.evaluate("document.activeElement?.closest('.xterm') === null")).toBe(true);

    // Files: upload from the browser, see it listed, download it back; reached with the arrow keys.
    await page.getByRole("tab", { name: "Terminal" }).focus();
    await page.keyboard.press("ArrowRight");
    await expect.poll(() => page.getByRole("tab", { name: "Files" }).getAttribute("aria-selected")).toBe("true");
    await page.getByLabel("Upload into this folder").setInputFiles({ name: "hello.txt", mimeType: "text/plain", buffer: Buffer.from("uploaded from chromium\n") });
    await page.getByText("Uploaded hello.txt").waitFor({ timeout: 20_000 });
    expect(await sandbox.files.readText("/root/hello.txt")).toBe("uploaded from chromium\n");
    await sandbox.files.write("/root/made-inside.txt", "written by the sandbox\n");
    await page.getByRole("button", { name: "Open", exact: true }).click();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download made-inside.txt" }).click()]);
    expect(readFileSync((await download.path())!, "utf8")).toBe("written by the sandbox\n");
    await shot("files");

    // Processes: a background process's output, replayed then live.
    const talker = await sandbox.commands.start("echo proc-line-$((6*7)); sleep 600", { timeoutMs: 0 });
    await page.getByRole("tab", { name: "Processes" }).click();
    await page.getByRole("button", { name: "Refresh processes" }).click();
    await page.getByRole("button", { name: `Logs of ${talker.pid}` }).click();
    await page.getByLabel("Process log").getByText("proc-line-42").waitFor({ timeout: 20_000 });
    await shot("processes");

    // Ports: the signed preview link opens the sandbox's page in a new tab.
    await page.getByRole("tab", { name: "Ports" }).click();
    const link = page.getByRole("link", { name: "Preview port 3000" });
    await expect.poll(async () => {
      if (await link.count()) return true;
      await page.getByRole("button", { name: "Refresh ports" }).click();
      return false;
    }, { timeout: 20_000 }).toBe(true);
    const [preview] = await Promise.all([page.context().waitForEvent("page"), link.click()]);
    await preview.waitForLoadState();
    expect(await preview.textContent("body")).toBe("preview-ok");
    await preview.close();

    // Charts: the daemon's own history of the last hour (a sample every 5 s while running).
    await page.getByRole("tab", { name: "Charts" }).click();
    await page.getByText(/^CPU: \d+\.\d %/).waitFor({ timeout: 20_000 });
    await page.getByRole("img", { name: "Memory over the last hour" }).waitFor();
    await shot("charts");

    // Back to the list: pause, and the row's state follows.
    await page.getByRole("link", { name: "Sandboxes", exact: true }).click();
    await page.getByRole("button", { name: `Pause ${id}` }).click();
    await row(id).and(page.locator('[data-state="paused"]')).waitFor({ timeout: 30_000 });
    expect((await sandbox.refresh()).state).toBe("paused");
    expect(cspViolations).toEqual([]);
  }, 240_000);

  it("builds a small template, streams its log, sets its pool size; the host page shows doctor's checks", async () => {
    await page.getByRole("link", { name: "Templates" }).click();
    await page.getByLabel("Name").fill(templateName);
    await page.getByRole("button", { name: "Build" }).click();
    await page.getByText(`Built ${templateName}`, { exact: true }).waitFor({ timeout: 180_000 });
    expect(await page.getByLabel("Build log").textContent()).toContain("built-by-42");
    await page.locator(`tr[data-ref="${templateName}:1"]`).waitFor();
    // Its warm-pool size, set from the table (0: a pool here would boot sandboxes for nothing).
    await page.getByLabel(`Pool size of ${templateName}:1`, { exact: true }).fill("0");
    await page.getByRole("button", { name: `Set the pool size of ${templateName}:1` }).click();
    await page.getByText(`Pool of ${templateName}:1: 0`).waitFor();
    await shot("templates");
    await page.getByRole("link", { name: "Host" }).click();
    await page.getByRole("heading", { name: "Runtimes" }).waitFor();
    await page.getByText("gvisor: available").waitFor();
    await page.getByRole("heading", { name: "Secrets" }).waitFor();
    await page.getByRole("list", { name: "Host checks" }).getByText(/^✓ root: running as root/).waitFor({ timeout: 60_000 });
    await shot("host");
    expect(cspViolations).toEqual([]);
  }, 240_000);
});
