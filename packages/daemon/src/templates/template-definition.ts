import type { NetworkPolicy, TemplateResources } from "@stasis/protocol";

/**
 * What a template is built from, whichever file described it (a spec or a Dockerfile): a base, then
 * steps in order. The builder turns each filesystem step into a cached layer; env, workdir and user steps
 * change no files but apply to the steps after them and to the template's sandboxes.
 */
export type BaseImage =
  /** A Debian release made with mmdebstrap (minbase + the few packages every template needs). */
  | { kind: "debian"; suite: string }
  /** Another template: `name` (its latest version) or `name:version`. */
  | { kind: "template"; ref: string };

interface StepSource {
  /** 1-based line in the spec or Dockerfile the step came from; null when it has none (e.g. a CLI flag). */
  line: number | null;
  /** The step as the user wrote it, for logs and errors (one line, trimmed). */
  text: string;
}

export type BuildStep =
  /** A string runs through `/bin/sh -c`; an array is exec form (argv). */
  | ({ kind: "run"; command: string | string[] } & StepSource)
  /** Paths relative to the build context; `dest` absolute or relative to the current workdir. */
  | ({ kind: "copy"; sources: string[]; dest: string; chown: string | null } & StepSource)
  /** Debian packages: `apt-get install --no-install-recommends` inside the build sandbox. */
  | ({ kind: "packages"; names: string[] } & StepSource)
  | ({ kind: "env"; vars: Record<string, string> } & StepSource)
  | ({ kind: "workdir"; path: string } & StepSource)
  | ({ kind: "user"; user: string } & StepSource);

export interface TemplateDefinition {
  source: "spec" | "dockerfile";
  /** The spec's own `name`, if it has one (the build request's name wins). */
  name: string | null;
  from: BaseImage;
  fromLine: number | null;
  steps: BuildStep[];
  /** Start command (spec `start`, Dockerfile CMD/ENTRYPOINT), as a shell command line. */
  start: string | null;
  /** Readiness check (spec `ready`, Dockerfile HEALTHCHECK CMD): a shell command that exits 0 when ready. */
  ready: string | null;
  /** How long the readiness check may take to pass after the start command, in ms (default 60 s). */
  readyTimeoutMs: number | null;
  resources: Partial<TemplateResources>;
  pool: number | null;
  /** null: snapshot when there is a start command and the runtime can checkpoint. */
  snapshot: boolean | null;
  /** The egress policy of its sandboxes (spec `network`); null: its base template's, else the daemon's default. */
  network: NetworkPolicy | null;
}

/** A problem in the spec or Dockerfile, pointing at its line. */
export class TemplateSpecError extends Error {
  constructor(
    message: string,
    readonly line: number | null,
  ) {
    super(line === null ? message : `line ${line}: ${message}`);
  }
}
