import { existsSync, openAsBlob } from "node:fs";
import { stat } from "node:fs/promises";
import { join, posix } from "node:path";
import {
  BuildTemplateQuerySchema,
  errorRegistry,
  ImportTemplateQuerySchema,
  TemplateBuildEventSchema,
  type Template,
  type TemplateBuildEvent,
  type UpdateTemplateRequest,
} from "@stasis/protocol";
import { collectContext, DEFAULT_BUILD_FILES, formatBytes, MAX_CONTEXT_BYTES, packEntries } from "./build-context.js";
import { splitConnection, type ConnectionOptions } from "./connection.js";
import { errorFromBody, InvalidRequestError, PayloadTooLargeError, protocolError, type StasisError } from "./errors.js";
import { HttpClient, transportError, type CallArgs } from "./http.js";
import { readNdjson } from "./ndjson.js";

/** Defaults for the template's sandboxes and its warm pool; each overrides what the spec says. */
export interface TemplateResourceOptions {
  cpu?: number;
  memoryMiB?: number;
  diskMiB?: number;
  /** Warm-pool size. */
  pool?: number;
}

export interface TemplateStreamOptions {
  /** Sees every event as it arrives, the final `done` or `error` included. */
  onEvent?: (event: TemplateBuildEvent) => void;
  signal?: AbortSignal;
}

export interface BuildTemplateOptions extends TemplateResourceOptions, TemplateStreamOptions {
  /** Directory whose files the build can copy; its `.stasisignore` or `.dockerignore` leaves some out. */
  context: string;
  name: string;
  /** The spec or Dockerfile, relative to the context. Default: stasis.yaml, stasis.yml, stasis.json or Dockerfile. */
  file?: string;
  /** Rebuild every step instead of reusing cached layers. */
  noCache?: boolean;
  /** Take (true) or skip (false) the snapshot of a template with a start command, whatever the spec says. */
  snapshot?: boolean;
}

export interface ImportTemplateOptions extends TemplateResourceOptions, TemplateStreamOptions {
  /** A `docker save` tarball, a tar of an OCI image layout, or an OCI image layout directory. */
  archive: string;
  name: string;
  /** Which image in the archive (tag or `name:tag`); default: the only one. */
  image?: string;
}

/**
 * Templates on the daemon: built from a spec or Dockerfile, imported from an OCI image, and their
 * versions. A template ref is `name` (its latest version) or `name:version`.
 */
export class Templates {
  private constructor() {}

  /**
   * Builds a new version of `name` from a context directory, streaming its progress to `onEvent`.
   * Resolves with the template once built; a failed step rejects with a TemplateBuildError that names it.
   */
  static async build(options: BuildTemplateOptions & ConnectionOptions): Promise<Template> {
    const { connection, rest } = splitConnection(options);
    const { context, file, onEvent, signal, ...params } = rest;
    if (file !== undefined && (posix.isAbsolute(file) || /^\.\.(\/|$)/.test(posix.normalize(file)))) {
      throw invalid(`file '${file}' must be a relative path inside the build context`);
    }
    const query = checkedQuery(BuildTemplateQuerySchema, { ...params, file: file === undefined ? undefined : posix.normalize(file) });
    if (!(await isDirectory(context))) throw invalid(`build context '${context}' is not a directory`);
    const { entries, bytes, ignoreFile } = await collectContext(context, { keep: file === undefined ? DEFAULT_BUILD_FILES : [posix.normalize(file)] });
    if (bytes > MAX_CONTEXT_BYTES) {
      const after = ignoreFile ? ` after ${ignoreFile}` : "";
      throw new PayloadTooLargeError({
        code: "payload_too_large",
        message: `build context '${context}' is ${formatBytes(bytes)}${after}, over the ${formatBytes(MAX_CONTEXT_BYTES)} limit: list what the build does not need in a .dockerignore`,
        status: null,
        retryable: false,
      });
    }
    let packFailure: Error | undefined;
    const body = packEntries(context, entries, { limit: MAX_CONTEXT_BYTES, onError: (err) => (packFailure = err) });
    return stream(new HttpClient(connection), "buildTemplate", { query, raw: body, signal }, onEvent, () => packFailure);
  }

  /** Imports an OCI image as a new version of `name`, streaming progress to `onEvent`. */
  static async import(options: ImportTemplateOptions & ConnectionOptions): Promise<Template> {
    const { connection, rest } = splitConnection(options);
    const { archive, onEvent, signal, ...params } = rest;
    const query = checkedQuery(ImportTemplateQuerySchema, params);
    const info = await stat(archive).catch(() => undefined);
    let body: Blob | ReadableStream<Uint8Array>;
    if (info?.isDirectory()) {
      // An OCI image layout, or an unpacked `docker save` (which the daemon takes as a tarball anyway).
      if (!existsSync(join(archive, "oci-layout")) && !existsSync(join(archive, "manifest.json"))) {
        throw invalid(`'${archive}' is a directory but not an OCI image layout (no oci-layout file) nor an unpacked docker save (no manifest.json)`);
      }
      body = packEntries(archive, (await collectContext(archive, { ignore: false })).entries);
    } else if (info?.isFile()) {
      // A Blob has a known size, so the daemon can refuse one that is too big before it arrives.
      body = await openAsBlob(archive);
    } else {
      throw invalid(`archive '${archive}' is not a file or directory`);
    }
    return stream(new HttpClient(connection), "importTemplate", { query, raw: body, signal }, onEvent, () => undefined);
  }

  /** Every version of every template, newest first per name. */
  static async list(connection: ConnectionOptions = {}): Promise<Template[]> {
    return (await new HttpClient(connection).json("listTemplates")).templates;
  }

  /** One version: `name` for the latest, `name:version` for that one. Throws TemplateNotFoundError. */
  static async get(ref: string, connection: ConnectionOptions = {}): Promise<Template> {
    return new HttpClient(connection).json("getTemplate", { params: { ref } });
  }

  /** Changes a version's warm-pool size or default resources; what is left out stays. */
  static async update(ref: string, changes: UpdateTemplateRequest, connection: ConnectionOptions = {}): Promise<Template> {
    return new HttpClient(connection).json("updateTemplate", { params: { ref }, json: changes });
  }

  /** Deletes one version (`name:version`) or every version (`name`). Throws TemplateInUseError while sandboxes use it. */
  static async delete(ref: string, connection: ConnectionOptions = {}): Promise<void> {
    await new HttpClient(connection).empty("deleteTemplate", { params: { ref } });
  }
}

/** Sends the body and follows the event stream to its `done` (resolves) or `error` (rejects) event. */
async function stream(
  http: HttpClient,
  route: "buildTemplate" | "importTemplate",
  args: Pick<CallArgs, "query" | "raw" | "signal">,
  onEvent: ((event: TemplateBuildEvent) => void) | undefined,
  packFailure: () => Error | undefined,
): Promise<Template> {
  const what = route === "buildTemplate" ? "template build" : "template import";
  // The caller's own errors (from onEvent) pass through as they are, not as transport failures.
  let callbackError: { error: unknown } | undefined;
  try {
    const { response, requestId } = await http.open(route, { ...args, contentType: "application/x-tar" });
    if (!response.body) throw protocolError(`${what} replied without a body`, response.status, requestId);
    for await (const event of readNdjson(response.body, TemplateBuildEventSchema, { what: `${what} event`, status: response.status, requestId })) {
      try {
        onEvent?.(event);
      } catch (error) {
        callbackError = { error };
        throw error;
      }
      if (event.type === "done") return event.template;
      if (event.type === "error") throw buildError(event, requestId);
    }
    throw protocolError(`${what} ended without a done or error event`, response.status, requestId);
  } catch (err) {
    if (callbackError) throw callbackError.error;
    // fetch reports a failed upload body as a bare "fetch failed"; the packer knows why (a file went away,
    // the context outgrew the limit).
    const packed = packFailure();
    if (packed && !args.signal?.aborted) throw packed;
    throw transportError(err, what, args.signal, undefined);
  }
}

/** The typed error for the event's code; where the build failed goes into `details` (TemplateBuildError reads it). */
function buildError(event: Extract<TemplateBuildEvent, { type: "error" }>, requestId: string | undefined): StasisError {
  const { code, message, step, instruction, line } = event;
  return errorFromBody({ code, message, retryable: errorRegistry[code].retryable, requestId, details: { step, instruction, line } });
}

interface QuerySchema {
  safeParse(value: unknown): { success: true } | { success: false; error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] } };
}

/** The query as it goes on the wire, checked against the route's schema before any file is read or sent. */
function checkedQuery(schema: QuerySchema, params: Record<string, string | number | boolean | undefined>): Record<string, string> {
  const query: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) if (value !== undefined) query[key] = String(value);
  const result = schema.safeParse(query);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.map(String).join(".") || "(query)"}: ${i.message}`).join("; ");
    throw invalid(issues);
  }
  return query;
}

function invalid(message: string): InvalidRequestError {
  return new InvalidRequestError({ code: "invalid_request", message, status: null, retryable: false });
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}
