import type { CommandSpec } from "./specs.js";
import { str } from "./values.js";

/** The `stasis e2b key` commands; kept apart from specs.ts, which lists the others. */
export const e2bSpecs: CommandSpec[] = [
  {
    path: "e2b key create",
    usage: "stasis e2b key create [--name N] [--json]",
    summary: "Issue an API key for the E2B-compatible API and print it (shown only this once)",
    flags: [["--name N", "label to recognise the key by (default: default)"]],
    options: { name: { type: "string" } },
    args: { min: 0, max: 0 },
    build: ({ values }) => ({ kind: "e2b.key.create", name: str(values, "name") }),
  },
  {
    path: "e2b key list",
    usage: "stasis e2b key list [--json]",
    summary: "List the E2B API keys (ids and prefixes, not the keys)",
    options: {},
    args: { min: 0, max: 0 },
    build: () => ({ kind: "e2b.key.list" }),
  },
  {
    path: "e2b key revoke",
    usage: "stasis e2b key revoke ID...",
    summary: "Revoke E2B API keys by id",
    options: {},
    args: { min: 1, max: Infinity },
    build: ({ args }) => ({ kind: "e2b.key.revoke", ids: args }),
  },
];
