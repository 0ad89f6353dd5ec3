// First load of the console on a cold cache, in Debian's headless Chromium: median of N fresh contexts.
// Usage: node packages/console/scripts/measure-load.mjs http://127.0.0.1:7070 [runs]
import { chromium } from "playwright-core";

const base = process.argv[2] ?? "http://127.0.0.1:7070";
const runs = Number(process.argv[3] ?? 7);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
const results = [];
for (let i = 0; i < runs; i++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const started = Date.now();
  await page.goto(`${base}/console/`);
  await page.getByLabel("API key").waitFor();
  const wall = Date.now() - started;
  const nav = await page.evaluate(() => {
    const n = performance.getEntriesByType("navigation")[0];
    const bytes = performance.getEntriesByType("resource").reduce((a, r) => a + r.transferSize, n.transferSize);
    return { load: n.loadEventEnd, dcl: n.domContentLoadedEventEnd, bytes };
  });
  results.push({ wall, ...nav });
  await context.close();
}
await browser.close();
const median = (k) => results.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(results.length / 2)];
console.log(JSON.stringify({ runs, medianLoadEventMs: Math.round(median("load")), medianDomContentLoadedMs: Math.round(median("dcl")), medianLoginFormVisibleMs: median("wall"), transferredBytes: median("bytes") }));
