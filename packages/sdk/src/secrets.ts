import type { Secret } from "@stasis/protocol";
import { splitConnection, type ConnectionOptions } from "./connection.js";
import { HttpClient } from "./http.js";

export interface SetSecretOptions {
  /** The value; stored encrypted by the daemon and never returned by any call. No NUL, CR or LF (it goes into HTTP headers). */
  value: string;
  /** The only hosts it is sent to: domain names or `*.example.com`. */
  hosts: string[];
}

/**
 * Secrets injected at the network boundary: a sandbox created with `secrets: [name]` holds a placeholder in
 * the environment variable of that name, and the daemon's egress proxy replaces it with the value in request
 * headers to the secret's hosts only (HTTPS included). Nothing here ever returns a value.
 */
export class Secrets {
  private constructor() {}

  /** Creates the secret, or replaces the value and hosts of the one of that name. */
  static async set(name: string, options: SetSecretOptions & ConnectionOptions): Promise<Secret> {
    const { connection, rest } = splitConnection(options);
    return new HttpClient(connection).json("setSecret", { json: { name, value: rest.value, hosts: rest.hosts } });
  }

  /** Every secret: names, hosts and times. */
  static async list(connection: ConnectionOptions = {}): Promise<Secret[]> {
    const { secrets } = await new HttpClient(connection).json("listSecrets");
    return secrets;
  }

  /** One secret's hosts and times; throws SecretNotFoundError if there is none. */
  static async get(name: string, connection: ConnectionOptions = {}): Promise<Secret> {
    return new HttpClient(connection).json("getSecret", { params: { name } });
  }

  /** Deletes a secret; throws SecretNotFoundError if there is none. */
  static async delete(name: string, connection: ConnectionOptions = {}): Promise<void> {
    await new HttpClient(connection).empty("deleteSecret", { params: { name } });
  }
}
