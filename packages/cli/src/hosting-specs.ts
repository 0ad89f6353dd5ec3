import type { CommandSpec } from "./specs.js";
import { UsageError } from "./usage-error.js";
import { str } from "./values.js";

function portArg(text: string | undefined, what: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`${what} must be 1-65535, got '${text}'`);
  return port;
}

/** `stasis domain ...` and `stasis port-forward`: reaching sandboxes' ports by a host name of one's own, or as raw TCP. */
export const hostingSpecs: CommandSpec[] = [
  {
    path: "domain add",
    usage: "stasis domain add HOST SANDBOX_ID PORT [--json]",
    summary: "Serve a sandbox's port at a host name of your own (point its DNS at the daemon, or at a proxy in front of it)",
    options: {},
    args: { min: 3, max: 3 },
    build: ({ args }) => ({ kind: "domain.add", host: args[0]!.toLowerCase(), sandboxId: args[1]!, port: portArg(args[2], "PORT") }),
  },
  {
    path: "domain ls",
    aliases: ["domain list"],
    usage: "stasis domain ls [--json]",
    summary: "List the custom domains and the sandbox ports they serve",
    options: {},
    args: { min: 0, max: 0 },
    build: () => ({ kind: "domain.list" }),
  },
  {
    path: "domain rm",
    aliases: ["domain delete"],
    usage: "stasis domain rm HOST...",
    summary: "Stop serving custom domains",
    options: {},
    args: { min: 1, max: Infinity },
    build: ({ args }) => ({ kind: "domain.rm", hosts: args }),
  },
  {
    path: "port-forward",
    usage: "stasis port-forward SANDBOX_ID PORT [--local-port N] [--address A]",
    summary: "Forward a local TCP port to a port in the sandbox (any protocol: a database, SSH...) until Ctrl-C",
    flags: [
      ["--local-port N", "the local port (default: the sandbox's port number; 0: any free port)"],
      ["--address A", "the local address to listen on (default 127.0.0.1: only this host)"],
    ],
    options: { "local-port": { type: "string" }, address: { type: "string" } },
    args: { min: 2, max: 2 },
    build: ({ values, args }) => {
      const port = portArg(args[1], "PORT");
      const local = str(values, "local-port");
      const localPort = local === undefined ? port : local === "0" ? 0 : portArg(local, "--local-port");
      return { kind: "port-forward", id: args[0]!, port, localPort, address: str(values, "address") ?? "127.0.0.1" };
    },
  },
];
