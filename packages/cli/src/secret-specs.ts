import { SecretHostSchema, SecretNameSchema } from "@stasis/protocol";
import type { CommandSpec } from "./specs.js";
import { UsageError } from "./usage-error.js";
import { list, str } from "./values.js";


function secretName(text: string): string {
  const parsed = SecretNameSchema.safeParse(text);
  if (!parsed.success) throw new UsageError(`'${text}' is not a secret name: letters, digits and _, not starting with a digit (at most 128)`);
  return parsed.data;
}

function secretHosts(hosts: string[]): string[] {
  if (hosts.length === 0) throw new UsageError("give the hosts the secret may go to: --host api.example.com (repeatable; *.example.com for any name below it)");
  for (const h of hosts) if (!SecretHostSchema.safeParse(h).success) throw new UsageError(`--host '${h}' is not a domain name or *.example.com`);
  return hosts;
}

/** The `stasis secret` commands; kept apart from specs.ts, which lists the others. */
export const secretSpecs: CommandSpec[] = [
  {
    path: "secret set",
    usage: "stasis secret set NAME --host H [--host H2]... (--value-stdin | --value V) [--json]",
    summary: "Create or replace a secret: its value goes only into request headers to its hosts, never into a sandbox",
    flags: [
      ["--host H", "a host the value may go to: a domain name or *.example.com (repeatable, at least one)"],
      ["--value-stdin", "read the value from stdin (one trailing newline dropped); keeps it out of shell history and ps"],
      ["--value V", "the value on the command line (visible in ps and shell history: prefer --value-stdin)"],
    ],
    options: { host: { type: "string", multiple: true }, value: { type: "string" }, "value-stdin": { type: "boolean" } },
    args: { min: 1, max: 1 },
    build: ({ values, args }) => {
      const value = str(values, "value");
      const fromStdin = values["value-stdin"] === true;
      if ((value === undefined) === !fromStdin) throw new UsageError("give the value with exactly one of --value-stdin or --value V");
      return { kind: "secret.set", name: secretName(args[0]!), hosts: secretHosts(list(values, "host")), value: fromStdin ? { stdin: true } : { text: value! } };
    },
  },
  {
    path: "secret ls",
    aliases: ["secret list"],
    usage: "stasis secret ls [--json]",
    summary: "List the secrets: names and hosts, never values",
    options: {},
    args: { min: 0, max: 0 },
    build: () => ({ kind: "secret.list" }),
  },
  {
    path: "secret rm",
    aliases: ["secret delete"],
    usage: "stasis secret rm NAME...",
    summary: "Delete secrets by name",
    options: {},
    args: { min: 1, max: Infinity },
    build: ({ args }) => ({ kind: "secret.rm", names: args.map(secretName) }),
  },
];
