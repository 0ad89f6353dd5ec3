import { CodeContextIdSchema, CodeLanguageSchema } from "@stasis/protocol";
import type { CommandSpec } from "./specs.js";
import { UsageError } from "./usage-error.js";
import { duration, keyValues, list, str } from "./values.js";

/** `stasis run-code`; kept apart from specs.ts, which lists the others. */
export const codeSpecs: CommandSpec[] = [
  {
    path: "run-code",
    usage: "stasis run-code ID [-l LANG | --context CTX] [-e K=V]... [--timeout D] [-c CODE] [--json]   (code from stdin without -c)",
    summary: "Run code in the sandbox's code interpreter (code-interpreter template), streaming output; exits 1 on an exception",
    flags: [
      ["-l, --language L", "python (default), javascript, typescript or bash: that language's default context"],
      ["--context CTX", "a context id (its variables and working directory are kept between runs)"],
      ["-c, --code CODE", "the code; without it, stdin is read to its end"],
      ["-e, --env K=V", "environment variable for this run only (repeatable)"],
      ["--timeout D", "interrupt the run after this long (the context keeps its state)"],
      ["", "The last expression's value is printed; images and other display data are listed on stderr (--json prints every event)."],
    ],
    options: { language: { type: "string", short: "l" }, context: { type: "string" }, code: { type: "string", short: "c" }, env: { type: "string", short: "e", multiple: true }, timeout: { type: "string" } },
    args: { min: 1, max: 1 },
    build: ({ values, args }) => {
      const language = str(values, "language");
      const context = str(values, "context");
      if (language && context) throw new UsageError("give --language or --context, not both", ["run-code"]);
      if (language !== undefined && !CodeLanguageSchema.safeParse(language).success) throw new UsageError(`--language must be one of ${CodeLanguageSchema.options.join(", ")}`, ["run-code"]);
      if (context !== undefined && !CodeContextIdSchema.safeParse(context).success) throw new UsageError(`--context '${context}' is not a context id`, ["run-code"]);
      const code = str(values, "code");
      return {
        kind: "run-code",
        id: args[0]!,
        ...(language ? { language: CodeLanguageSchema.parse(language) } : {}),
        ...(context ? { context } : {}),
        ...(code !== undefined ? { code } : {}),
        env: keyValues(list(values, "env"), "--env"),
        ...(str(values, "timeout") !== undefined ? { timeoutMs: duration(str(values, "timeout"), "--timeout")! } : {}),
      };
    },
  },
];
