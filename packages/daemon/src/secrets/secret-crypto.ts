import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { closeSync, constants, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { ApiError } from "../errors/api-error.js";

const KEY_BYTES = 32;
const IV_BYTES = 12;

/** The secrets key is missing, unreadable or not the one the stored secrets were encrypted with (503 `secrets_unavailable`). */
export class SecretsKeyError extends ApiError {
  constructor(message: string) {
    super("secrets_unavailable", message);
    this.name = "SecretsKeyError";
  }
}

export interface Sealed {
  ciphertext: Buffer;
  iv: Buffer;
  authTag: Buffer;
  /** Names the key (a hash of it, not the key), so a wrong key is told apart from a damaged row. */
  keyId: string;
}

/**
 * The AES-256-GCM key of the secrets, in a file of its own (32 raw bytes, or 64 hex digits as `openssl rand
 * -hex 32` writes them), never in the database: a copy of stasis.db alone reveals no value. Read lazily, so a
 * missing or broken key fails the use of a secret with a clear message, never the daemon's start.
 */
export class SecretsKey {
  private key: Buffer | null = null;

  constructor(readonly path: string) {}

  /** The key, created (0600) when there is no file and `create` is true. */
  private load(create: boolean): Buffer {
    if (this.key) return this.key;
    let raw: Buffer;
    try {
      raw = readFileSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new SecretsKeyError(`cannot read the secrets key ${this.path}: ${(err as Error).message}`);
      if (!create) throw new SecretsKeyError(`the secrets key ${this.path} is missing: restore it (or set STASIS_SECRETS_KEY_FILE), or delete the secrets and set them again`);
      raw = createKeyFile(this.path);
    }
    this.key = parseKey(raw, this.path);
    return this.key;
  }

  /** The key's id without creating a key: null when there is no key file yet. */
  currentId(): string | null {
    try {
      return keyId(this.load(false));
    } catch (err) {
      if (err instanceof SecretsKeyError && /is missing/.test(err.message)) return null;
      throw err;
    }
  }

  /** Encrypts `value`, bound to `context` (the secret's name and hosts): a row moved or edited in the database no longer decrypts. */
  seal(value: string, context: string, create: boolean): Sealed {
    const key = this.load(create);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(context));
    const ciphertext = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
    return { ciphertext, iv, authTag: cipher.getAuthTag(), keyId: keyId(key) };
  }

  open(sealed: Sealed, context: string, what: string): string {
    const key = this.load(false);
    if (keyId(key) !== sealed.keyId) {
      throw new SecretsKeyError(`${what} was encrypted with another secrets key than ${this.path} (key id ${sealed.keyId}, this file's ${keyId(key)}): restore that key, or set the secret again`);
    }
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, sealed.iv);
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(sealed.authTag);
      return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]).toString("utf8");
    } catch {
      throw new SecretsKeyError(`${what} does not decrypt: its row in the database was altered or damaged; set the secret again`);
    }
  }
}

function keyId(key: Buffer): string {
  return createHash("sha256").update("stasis secrets key id\0").update(key).digest("hex").slice(0, 16);
}

function parseKey(raw: Buffer, path: string): Buffer {
  if (raw.length === KEY_BYTES) return raw;
  const text = raw.toString("latin1").trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  throw new SecretsKeyError(`the secrets key ${path} must hold 32 bytes (raw, or 64 hex digits), found ${raw.length} bytes`);
}

/**
 * Writes a fresh key beside its final name, synced, then links it into place: the link fails if the file
 * appeared meanwhile (another daemon on the same folder), whose key is then used, and a half-written key is
 * never visible. Synced because a secret sealed with a key a power cut lost is lost with it.
 */
function createKeyFile(path: string): Buffer {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  const key = randomBytes(KEY_BYTES);
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    const fd = openSync(temp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
    try {
      writeSync(fd, key);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(temp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return readFileSync(path);
      throw err;
    }
    syncFolder(dir);
    return key;
  } catch (err) {
    throw new SecretsKeyError(`cannot create the secrets key ${path}: ${(err as Error).message}`);
  } finally {
    rmSync(temp, { force: true });
  }
}

function syncFolder(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
