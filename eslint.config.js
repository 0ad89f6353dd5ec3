import { readdirSync } from "node:fs";
import { join, relative } from "node:path";
import tseslint from "typescript-eslint";

// ---- Layering (docs/ARCHITECTURE.md, "Import rules") ---------------------------------------------------
// `no-restricted-imports` matches the import string, not the file it resolves to, so a relative import's
// meaning depends on where the importing file sits. Hence one block per source folder (found at load time,
// so new folders are covered), each with the patterns that folder's depth gives. Blocks never overlap: a
// later block would replace an earlier one's options for the same rule.

const ROOT = import.meta.dirname;

/** Which @stasis packages each package may import statically. */
const PACKAGE_IMPORTS = {
  protocol: [],
  sdk: ["protocol"],
  // The MCP tools are written once against the SDK, for both transports (stdio in the CLI, /mcp in the daemon).
  mcp: ["sdk", "protocol"],
  // daemon and bench: only as import() in the daemon-side command file (see CLI_DAEMON_SIDE below).
  cli: ["sdk", "protocol", "mcp"],
  bench: ["sdk", "protocol"],
  // mcp: for /mcp only, loaded by import() on its first request (http/mcp-endpoint.ts).
  daemon: ["protocol", "mcp"],
  // The web console (a browser bundle): the protocol's types only, never the daemon's code.
  console: ["protocol"],
};
/** The one CLI file that may load the daemon and the bench, and only lazily. */
const CLI_DAEMON_SIDE = "packages/cli/src/commands/local.ts";

/** Folders of packages/daemon/src and what they may not reach. */
const DAEMON_FOLDERS = {
  services: { forbid: ["http"], packages: { regex: "^(hono|@hono/[^/]+)(/|$)", names: "hono or @hono/*" }, why: "services never import HTTP (routes call services, not the reverse)" },
  runtime: { confined: true, why: "runtime/ (drivers and their helpers) imports only the runtime interface and runtime helpers" },
  store: { forbid: ["services", "http"], why: "the store is below the services and the HTTP layer" },
  network: { forbid: ["services", "http"], packages: { regex: "^(hono|@hono/[^/]+)(/|$)", names: "hono or @hono/*" }, why: "network/ (namespaces, nftables, DNS, egress proxy) sits below the services and knows no HTTP API" },
};

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** A relative import climbing `levels` folders or more. */
const climbs = (levels) => `^(\\.\\./){${levels}}`;

function sourceFolders(dir) {
  const entries = readdirSync(join(ROOT, dir), { withFileTypes: true });
  return [dir, ...entries.filter((e) => e.isDirectory()).flatMap((e) => sourceFolders(`${dir}/${e.name}`))];
}

function patternsFor(pkg, dir) {
  const src = `packages/${pkg}/src`;
  const depth = relative(src, dir).split("/").filter(Boolean).length;
  const allowed = PACKAGE_IMPORTS[pkg];
  const others = Object.keys(PACKAGE_IMPORTS).filter((p) => !allowed.includes(p));
  const patterns = [
    { regex: climbs(depth + 1), message: `relative imports stay inside ${src}; import another package by its name` },
    {
      regex: `^@stasis/(${others.join("|")})(/|$)`,
      message: `${pkg} may import ${allowed.length ? allowed.map((p) => `@stasis/${p}`).join(" and ") : "no @stasis package"} (docs/ARCHITECTURE.md, Import rules)`,
    },
  ];
  if (pkg !== "daemon") return patterns;
  const [folder, ...rest] = relative(src, dir).split("/").filter(Boolean);
  const rule = folder === undefined ? undefined : DAEMON_FOLDERS[folder];
  if (!rule) return patterns;
  if (rule.confined) patterns.push({ regex: climbs(rest.length + 1), message: `${rule.why}: nothing outside ${src}/${folder}` });
  for (const target of rule.forbid ?? []) {
    patterns.push({ regex: `^${escape(relative(dir, `${src}/${target}`))}(/|$)`, message: `${rule.why}: no import of ${target}/` });
  }
  if (rule.packages) patterns.push({ regex: rule.packages.regex, message: `${rule.why}: no ${rule.packages.names}` });
  return patterns;
}

const layering = Object.keys(PACKAGE_IMPORTS).flatMap((pkg) =>
  sourceFolders(`packages/${pkg}/src`).map((dir) => ({
    files: [`${dir}/*.ts`],
    // Tests may reach across layers (to check that two copies agree, for instance); shipped code may not.
    ignores: ["**/*.test.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: patternsFor(pkg, dir) }] },
  })),
);

// no-restricted-imports does not see import(): the CLI's client commands must not load the daemon (native
// SQLite) or the bench that way either.
const cliLazyDaemon = {
  files: ["packages/cli/src/**/*.ts"],
  ignores: ["**/*.test.ts", CLI_DAEMON_SIDE],
  rules: {
    "no-restricted-syntax": [
      "error",
      {
        selector: "ImportExpression[source.value=/^@stasis.(daemon|bench)/]",
        message: `only ${CLI_DAEMON_SIDE} loads @stasis/daemon or @stasis/bench: client commands need only the SDK`,
      },
    ],
  },
};

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", "packages/agent/**", "spec/**", "**/*.js", "**/*.mjs", "vitest.config.ts"] },
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    // The daemon must never lose an error to an unawaited promise; nor may the bench, which must clean up.
    files: ["packages/daemon/src/**/*.ts", "packages/bench/src/**/*.ts"],
    // Tests and the test-only fakes (kept out of the package's build) are not in its project.
    ignores: ["**/*.test.ts", "packages/daemon/src/runtime/drivers/fake-*.ts", "packages/daemon/src/**/test-support/**"],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false } }],
    },
  },
  ...layering,
  cliLazyDaemon,
);
