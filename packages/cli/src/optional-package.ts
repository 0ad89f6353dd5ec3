/**
 * Loads a package the CLI does not require: @stasis/daemon (native SQLite) runs only on the daemon's host,
 * @stasis/bench only where `stasis bench` runs. When it is not installed, the error says what to install;
 * any other failure while loading it (one of its own dependencies missing, a broken native build) stays as
 * it is.
 */
export async function loadOptional<T>(name: string, purpose: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (isMissingPackage(err, name)) throw new MissingPackageError(name, purpose);
    throw err;
  }
}

export class MissingPackageError extends Error {
  readonly code = "missing_package";
  constructor(name: string, purpose: string) {
    super(`${purpose} needs ${name}, which is not installed here: install it beside @stasis/cli (npm install ${name})`);
    this.name = "MissingPackageError";
  }
}

function isMissingPackage(err: unknown, name: string): boolean {
  // Node says "Cannot find package '<name>' imported from ..."; a missing dependency of <name> names that one.
  return err instanceof Error && "code" in err && err.code === "ERR_MODULE_NOT_FOUND" && err.message.includes(`'${name}'`);
}
