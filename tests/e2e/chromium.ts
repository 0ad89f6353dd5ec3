import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** Headless Chromium for the browser e2e tests: Debian's, which the test set-up installs, else Playwright's. */
export function launchChromium(): Promise<Browser> {
  const path = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((p) => existsSync(p)) ?? chromium.executablePath();
  if (!existsSync(path)) throw new Error("no Chromium found: the test set-up (scripts/install-test-deps.sh) installs Debian's chromium");
  return chromium.launch({ executablePath: path, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
}
