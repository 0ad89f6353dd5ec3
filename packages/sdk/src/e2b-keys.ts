import type { CreatedE2bKey, E2bKey } from "@stasis/protocol";
import { splitConnection, type ConnectionOptions } from "./connection.js";
import { HttpClient } from "./http.js";

export interface CreateE2bKeyOptions {
  /** A label to recognise the key by in a list (printable ASCII, 1..64 characters; daemon default "default"). */
  name?: string;
}

/**
 * API keys for the daemon's E2B-compatible surface, for the unmodified `e2b` SDK (as `E2B_API_KEY`).
 * Each key acts with the authority of the daemon's own key; the daemon keeps only a hash, so the key
 * itself is in the reply to `create` and nowhere else.
 */
export class E2bKeys {
  private constructor() {}

  /** Issues a key (`e2b_` + 40 hex); `key` in the result is the only copy. */
  static async create(options: CreateE2bKeyOptions & ConnectionOptions = {}): Promise<CreatedE2bKey> {
    const { connection, rest } = splitConnection(options);
    return new HttpClient(connection).json("createE2bKey", { json: rest });
  }

  /** Every key, without the keys themselves. */
  static async list(connection: ConnectionOptions = {}): Promise<E2bKey[]> {
    const { keys } = await new HttpClient(connection).json("listE2bKeys");
    return keys;
  }

  /** Revokes a key by its id (`ek_...`); throws KeyNotFoundError if there is none. */
  static async revoke(id: string, connection: ConnectionOptions = {}): Promise<void> {
    await new HttpClient(connection).empty("deleteE2bKey", { params: { keyId: id } });
  }
}
