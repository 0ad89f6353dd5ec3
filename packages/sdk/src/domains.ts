import type { CreateDomainRequest, Domain } from "@stasis/protocol";
import { splitConnection, type ConnectionOptions } from "./connection.js";
import { HttpClient } from "./http.js";

/**
 * Custom domains: a host name of your own served by a sandbox's port (point its DNS at the daemon, or at a
 * TLS proxy in front of it). The sandbox's access settings apply: public, or its preview token.
 */
export class Domains {
  private constructor() {}

  /** Maps `host` to the sandbox's port (replacing that host's mapping). */
  static async create(request: CreateDomainRequest & ConnectionOptions): Promise<Domain> {
    const { connection, rest } = splitConnection(request);
    return new HttpClient(connection).json("createDomain", { json: { host: rest.host, sandboxId: rest.sandboxId, port: rest.port } });
  }

  static async list(connection: ConnectionOptions = {}): Promise<Domain[]> {
    return (await new HttpClient(connection).json("listDomains")).domains;
  }

  /** Throws DomainNotFoundError if the host is not mapped. */
  static async delete(host: string, connection: ConnectionOptions = {}): Promise<void> {
    await new HttpClient(connection).empty("deleteDomain", { params: { host } });
  }
}
