import { EgressTargetSchema, SecretNameSchema, type NetworkPolicy } from "@stasis/protocol";
import type { CommandSpec, Values } from "./specs.js";
import { UsageError } from "./usage-error.js";
import { list, str } from "./values.js";


function targets(items: string[], flag: string): string[] {
  for (const t of items) if (!EgressTargetSchema.safeParse(t).success) throw new UsageError(`${flag} '${t}' is not a CIDR, an IPv4 address or a domain name (exact or *.example.com)`);
  return items;
}

/** Flags shared by `sandbox create` and `sandbox network`. */
export const networkFlags: [string, string][] = [
  ["--internet on|off", "reach the internet at all (default: the daemon's)"],
  ["--allow-out T", "allowed target: CIDR, address, name or *.name (repeatable); with any, nothing else is allowed"],
  ["--deny-out T", "refused target (repeatable); --allow-out wins where both match"],
];
export const networkOptions = { internet: { type: "string" }, "allow-out": { type: "string", multiple: true }, "deny-out": { type: "string", multiple: true } } as const;

/** The policy the flags give (fields not given are left out). */
export function networkPolicy(values: Values): NetworkPolicy {
  const policy: NetworkPolicy = {};
  const internet = str(values, "internet");
  if (internet !== undefined) {
    if (internet !== "on" && internet !== "off") throw new UsageError(`--internet takes on or off, got '${internet}'`);
    policy.internet = internet === "on";
  }
  const allow = list(values, "allow-out");
  const deny = list(values, "deny-out");
  if (allow.length > 0) policy.allowOut = targets(allow, "--allow-out");
  if (deny.length > 0) policy.denyOut = targets(deny, "--deny-out");
  return policy;
}

/** `--secret NAME` (repeatable) for `sandbox create`. */
export function secretNames(values: Values): string[] {
  const names = list(values, "secret");
  for (const n of names) if (!SecretNameSchema.safeParse(n).success) throw new UsageError(`--secret '${n}' is not a secret name`);
  return names;
}

export const networkSpecs: CommandSpec[] = [
  {
    path: "sandbox url",
    usage: "stasis sandbox url ID PORT [--sign [--expires D]]",
    summary: "Print the preview URL of a port of the sandbox (with --sign: a URL that opens it in a browser until it expires)",
    flags: [
      ["--sign", "a signed URL (for a private sandbox: it sets a cookie in the browser that opens the port)"],
      ["--expires S", "with --sign: seconds the URL works (default 3600)"],
    ],
    options: { sign: { type: "boolean" }, expires: { type: "string" } },
    args: { min: 2, max: 2 },
    build: ({ values, args }) => {
      const port = Number(args[1]);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`PORT must be 1-65535, got '${args[1]}'`);
      const expires = str(values, "expires");
      const expiresInS = expires === undefined ? undefined : Number(expires);
      if (expiresInS !== undefined && (!Number.isInteger(expiresInS) || expiresInS < 1)) throw new UsageError(`--expires takes whole seconds, got '${expires}'`);
      return { kind: "sandbox.url", id: args[0]!, port, sign: values.sign === true, ...(expiresInS === undefined ? {} : { expiresInS }) };
    },
  },
  {
    path: "sandbox ports",
    usage: "stasis sandbox ports ID",
    summary: "List the TCP ports a process listens on in the sandbox, with their URLs",
    options: {},
    args: { min: 1, max: 1 },
    build: ({ args }) => ({ kind: "sandbox.ports", id: args[0]! }),
  },
  {
    path: "sandbox preview",
    usage: "stasis sandbox preview ID [--public on|off] [--rotate-token]",
    summary: "Show or change who may open the sandbox's ports; prints its access token",
    flags: [
      ["--public on|off", "serve its ports to anyone (on) or only with its token (off, the default)"],
      ["--rotate-token", "a new token: the old one and every signed URL made from it stop working"],
    ],
    options: { public: { type: "string" }, "rotate-token": { type: "boolean" } },
    args: { min: 1, max: 1 },
    build: ({ values, args }) => {
      const pub = str(values, "public");
      if (pub !== undefined && pub !== "on" && pub !== "off") throw new UsageError(`--public takes on or off, got '${pub}'`);
      return { kind: "sandbox.preview", id: args[0]!, change: { ...(pub === undefined ? {} : { public: pub === "on" }), ...(values["rotate-token"] === true ? { rotateToken: true } : {}) } };
    },
  },
  {
    path: "sandbox network",
    usage: "stasis sandbox network ID [--internet on|off] [--allow-out T]... [--deny-out T]... [--clear-allow] [--clear-deny]",
    summary: "Show or change what a sandbox may reach; new connections follow at once",
    flags: [...networkFlags, ["--clear-allow", "empty the allow list"], ["--clear-deny", "empty the deny list"]],
    options: { ...networkOptions, "clear-allow": { type: "boolean" }, "clear-deny": { type: "boolean" } },
    args: { min: 1, max: 1 },
    build: ({ values, args }) => {
      const policy = networkPolicy(values);
      if (values["clear-allow"] === true) policy.allowOut = [];
      if (values["clear-deny"] === true) policy.denyOut = [];
      return { kind: "sandbox.network", id: args[0]!, policy };
    },
  },
];
