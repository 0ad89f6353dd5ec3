import { z } from "zod";

/**
 * The one error registry: every error the API can return has a stable code, one HTTP status and a
 * retryable flag. The daemon throws by code, the SDK maps codes back to typed error classes.
 */
export const errorRegistry = {
  invalid_request: { status: 400, retryable: false, description: "The request failed validation." },
  unauthorized: { status: 401, retryable: false, description: "Missing or wrong API key." },
  permission_denied: { status: 403, retryable: false, description: "The sandbox refused the file operation." },
  route_not_found: { status: 404, retryable: false, description: "No such API route." },
  sandbox_not_found: { status: 404, retryable: false, description: "No sandbox with this id." },
  process_not_found: { status: 404, retryable: false, description: "No process with this pid in the sandbox." },
  file_not_found: { status: 404, retryable: false, description: "No such file or directory in the sandbox." },
  domain_not_found: { status: 404, retryable: false, description: "No custom domain with this host name." },
  context_not_found: { status: 404, retryable: false, description: "No code context with this id in the sandbox's code interpreter." },
  key_not_found: { status: 404, retryable: false, description: "No API key with this id." },
  secret_not_found: { status: 404, retryable: false, description: "No secret with this name." },
  template_not_found: { status: 404, retryable: false, description: "No template with this name is built." },
  template_in_use: { status: 409, retryable: false, description: "Sandboxes still use this template version (or a warm-pool member was still starting); delete them first. Templates built on it keep their own layers." },
  invalid_template: { status: 422, retryable: false, description: "The template spec, Dockerfile or image is invalid; the message points at the line." },
  template_build_failed: { status: 422, retryable: false, description: "A build step failed; the message names the step and its output." },
  method_not_allowed: { status: 405, retryable: false, description: "The route does not accept this method." },
  file_exists: { status: 409, retryable: false, description: "The path already exists." },
  not_a_directory: { status: 409, retryable: false, description: "A path component is not a directory." },
  is_a_directory: { status: 409, retryable: false, description: "The path is a directory." },
  directory_not_empty: { status: 409, retryable: false, description: "The directory is not empty; pass recursive." },
  name_too_long: { status: 400, retryable: false, description: "A path component is longer than 255 bytes, or the path longer than the file system allows." },
  symlink_loop: { status: 400, retryable: false, description: "Resolving the path met too many symbolic links (a loop)." },
  not_a_regular_file: { status: 409, retryable: false, description: "The path is a FIFO, device or socket; only regular files can be read." },
  file_busy: { status: 409, retryable: false, description: "The file is in use and cannot be replaced or removed (a mount point, or a running binary such as the sandbox's agent)." },
  cross_device: { status: 409, retryable: false, description: "A move cannot cross file systems (e.g. into or out of a mount); copy and remove instead." },
  stdin_closed: { status: 409, retryable: false, description: "The process's stdin is closed (an earlier eof, or the process exited or closed it)." },
  insufficient_storage: { status: 507, retryable: false, description: "Not enough disk space: the sandbox's disk is full, or the host has less free space than the requested disk." },
  reply_too_large: { status: 502, retryable: false, description: "The sandbox agent's reply exceeded the protocol's message limit and was dropped." },
  sandbox_not_running: { status: 409, retryable: false, description: "The sandbox is not in a state that accepts this request." },
  agent_outdated: { status: 409, retryable: false, description: "The sandbox runs an older agent (it was started or hibernated by an older daemon) that lacks this feature (terminals, file watches); create a new sandbox to use it." },
  not_supported_by_runtime: { status: 409, retryable: false, description: "The sandbox's runtime cannot do this (crun cannot hibernate or fork: it has no checkpoint)." },
  payload_too_large: { status: 413, retryable: false, description: "The request body exceeds the configured limit." },
  unsupported_media_type: { status: 415, retryable: false, description: "The request body has the wrong content type." },
  capacity_exceeded: { status: 429, retryable: true, description: "The daemon runs its maximum number of sandboxes." },
  internal: { status: 500, retryable: true, description: "An unexpected daemon error; the daemon keeps serving." },
  exec_failed: { status: 422, retryable: false, description: "The command could not be started (no such binary, bad cwd)." },
  network_unavailable: { status: 409, retryable: false, description: "Sandboxes have no network on this daemon (STASIS_NETWORK=off, or the host lacks ip/nftables: run `stasis doctor`), or this sandbox was made without one." },
  secrets_unavailable: { status: 503, retryable: false, description: "The daemon's secrets key is missing, unreadable or not the key the stored secrets were encrypted with (the message says which); restore it or set the secrets again." },
  code_interpreter_unavailable: { status: 409, retryable: false, description: "No code interpreter answers in this sandbox: create it from the code-interpreter template (or one built on it)." },
  code_interpreter_failed: { status: 502, retryable: false, description: "The sandbox's code interpreter failed or sent a reply the daemon refuses (malformed or over its size bounds)." },
  runtime_unavailable: { status: 503, retryable: false, description: "The requested runtime is not installed or not usable on this host." },
  port_closed: { status: 502, retryable: true, description: "Nothing listens on this TCP port in the sandbox (yet)." },
  sandbox_failed: { status: 502, retryable: false, description: "The sandbox died or its agent stopped answering." },
  agent_timeout: { status: 504, retryable: true, description: "The sandbox agent did not answer in time." },
  stream_overflow: { status: 500, retryable: false, description: "A stream consumer fell too far behind." },
} as const satisfies Record<string, { status: number; retryable: boolean; description: string }>;

export type ErrorCode = keyof typeof errorRegistry;
export const errorCodes = Object.keys(errorRegistry) as [ErrorCode, ...ErrorCode[]];
export const ErrorCodeSchema = z.enum(errorCodes);

export const ErrorBodySchema = z.object({
  code: ErrorCodeSchema,
  message: z.string(),
  requestId: z.string().optional(),
  retryable: z.boolean(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** The single shape of every error response. */
export const ErrorResponseSchema = z.object({ error: ErrorBodySchema }).meta({ id: "ErrorResponse" });
export type ErrorResponse = z.infer<typeof ErrorResponseSchema>;

export function statusOf(code: ErrorCode): number {
  return errorRegistry[code].status;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(errorRegistry, value);
}
