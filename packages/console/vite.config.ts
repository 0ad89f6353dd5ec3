import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// Built into the daemon's package (packages/daemon/console), which serves it at /console/ with a strict
// CSP: no inline script, so no module-preload polyfill either; hashed asset names are cached for a year.
export default defineConfig({
  base: "/console/",
  root: fileURLToPath(new URL(".", import.meta.url)),
  build: {
    outDir: fileURLToPath(new URL("../daemon/console", import.meta.url)),
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: "es2022",
    reportCompressedSize: true,
  },
});
