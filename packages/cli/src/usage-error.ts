/** A command line that cannot be understood; `topic` names the help page that explains it. */
export class UsageError extends Error {
  readonly code = "usage";

  constructor(
    message: string,
    readonly topic: string[] = [],
  ) {
    super(message);
    this.name = "UsageError";
  }
}
