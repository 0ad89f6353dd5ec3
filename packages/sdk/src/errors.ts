import { errorRegistry, type ErrorBody, type ErrorCode } from "@stasis/protocol";

/** Codes for failures detected by the client itself, with no error reply from the daemon. */
export type ClientErrorCode = "connection_failed" | "request_timeout" | "protocol_error";

export interface StasisErrorInit {
  code: ErrorCode | ClientErrorCode;
  message: string;
  /** The HTTP status of the reply, or null when there was no (usable) reply. */
  status: number | null;
  requestId?: string | undefined;
  retryable: boolean;
  details?: Record<string, unknown> | undefined;
  cause?: unknown;
}

/** Base class of every error the SDK throws on purpose. */
export class StasisError extends Error {
  readonly code: ErrorCode | ClientErrorCode;
  readonly status: number | null;
  readonly requestId: string | undefined;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(init: StasisErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.status = init.status;
    this.requestId = init.requestId;
    this.retryable = init.retryable;
    this.details = init.details;
  }
}

// Grouped by what a caller would do about them: fix the request, fix credentials, look elsewhere, retry...
export class InvalidRequestError extends StasisError {}
export class MethodNotAllowedError extends InvalidRequestError {}
export class UnsupportedMediaTypeError extends InvalidRequestError {}
export class PayloadTooLargeError extends InvalidRequestError {}
export class AuthenticationError extends StasisError {}
export class PermissionDeniedError extends StasisError {}

export class NotFoundError extends StasisError {}
export class RouteNotFoundError extends NotFoundError {}
export class SandboxNotFoundError extends NotFoundError {}
export class ProcessNotFoundError extends NotFoundError {}
export class FileNotFoundError extends NotFoundError {}
export class TemplateNotFoundError extends NotFoundError {}
/** No secret with this name. */
export class SecretNotFoundError extends NotFoundError {}
/** No E2B API key with this id (never issued, or already revoked). */
export class KeyNotFoundError extends NotFoundError {}
/** No code context with this id in the sandbox's code interpreter. */
export class ContextNotFoundError extends NotFoundError {}

export class ConflictError extends StasisError {}
export class FileExistsError extends ConflictError {}
export class NotADirectoryError extends ConflictError {}
export class IsADirectoryError extends ConflictError {}
export class DirectoryNotEmptyError extends ConflictError {}
export class SandboxNotRunningError extends ConflictError {}
/** Sandboxes, or templates built on it, still use the template. */
export class TemplateInUseError extends ConflictError {}
/** The sandbox's runtime cannot do this (crun cannot hibernate or fork). */
export class NotSupportedByRuntimeError extends ConflictError {}
/** The sandbox's agent predates the feature (terminals, file watches): a new sandbox has it. */
export class AgentOutdatedError extends ConflictError {}
export class NotARegularFileError extends ConflictError {}
export class FileBusyError extends ConflictError {}
export class CrossDeviceError extends ConflictError {}
export class StdinClosedError extends ConflictError {}
export class NameTooLongError extends InvalidRequestError {}
export class SymlinkLoopError extends InvalidRequestError {}
/** The sandbox's disk is full, or the host cannot hold the requested disk. */
export class InsufficientStorageError extends StasisError {}

export class CapacityError extends StasisError {}
export class ExecFailedError extends StasisError {}
export class RuntimeUnavailableError extends StasisError {}
/** No custom domain with that host name. */
export class DomainNotFoundError extends StasisError {}
/** The daemon (or this sandbox) has no networking. */
export class NetworkUnavailableError extends StasisError {}
/** The daemon's secrets key is missing or is not the one its secrets were encrypted with. */
export class SecretsUnavailableError extends StasisError {}
export class SandboxFailedError extends StasisError {}
/** Nothing listens on the TCP port in the sandbox (a port-forward). */
export class PortClosedError extends StasisError {}
/** No code interpreter answers in the sandbox (not made from the code-interpreter template). */
export class CodeInterpreterUnavailableError extends ConflictError {}
/** The sandbox's code interpreter failed or sent a reply the daemon refused. */
export class CodeInterpreterFailedError extends StasisError {}
/**
 * A template build that failed on the template itself: a step failed (template_build_failed), or the spec,
 * Dockerfile or image is invalid (InvalidTemplateError). On the wire, where the build got to travels in
 * `details`; these fields read it typed (null where unknown, e.g. a failure before the first step).
 */
export class TemplateBuildError extends StasisError {
  /** The failing step, 1-based. */
  readonly step: number | null;
  /** The failing instruction as written in the spec or Dockerfile. */
  readonly instruction: string | null;
  /** Its line in the spec or Dockerfile. */
  readonly line: number | null;

  constructor(init: StasisErrorInit) {
    super(init);
    const { step, instruction, line } = init.details ?? {};
    this.step = typeof step === "number" ? step : null;
    this.instruction = typeof instruction === "string" ? instruction : null;
    this.line = typeof line === "number" ? line : null;
  }
}
export class InvalidTemplateError extends TemplateBuildError {}

/** The daemon's agent did not answer in time (agent_timeout), or the client gave up (request_timeout). */
export class TimeoutError extends StasisError {}
export class InternalError extends StasisError {}
export class StreamOverflowError extends InternalError {}

/** The daemon could not be reached, or the connection broke mid-request. */
export class ConnectionError extends StasisError {}
/** The daemon replied with something that does not match the protocol's schemas. */
export class ProtocolError extends StasisError {}

export type StasisErrorClass = new (init: StasisErrorInit) => StasisError;

/** Typed as a full Record so that a code added to the registry fails the build until it is mapped here. */
export const errorClasses: Record<ErrorCode, StasisErrorClass> = {
  invalid_request: InvalidRequestError,
  unauthorized: AuthenticationError,
  permission_denied: PermissionDeniedError,
  route_not_found: RouteNotFoundError,
  sandbox_not_found: SandboxNotFoundError,
  not_supported_by_runtime: NotSupportedByRuntimeError,
  agent_outdated: AgentOutdatedError,
  process_not_found: ProcessNotFoundError,
  file_not_found: FileNotFoundError,
  key_not_found: KeyNotFoundError,
  context_not_found: ContextNotFoundError,
  code_interpreter_unavailable: CodeInterpreterUnavailableError,
  code_interpreter_failed: CodeInterpreterFailedError,
  secret_not_found: SecretNotFoundError,
  template_not_found: TemplateNotFoundError,
  template_in_use: TemplateInUseError,
  invalid_template: InvalidTemplateError,
  template_build_failed: TemplateBuildError,
  method_not_allowed: MethodNotAllowedError,
  file_exists: FileExistsError,
  not_a_directory: NotADirectoryError,
  is_a_directory: IsADirectoryError,
  directory_not_empty: DirectoryNotEmptyError,
  name_too_long: NameTooLongError,
  symlink_loop: SymlinkLoopError,
  not_a_regular_file: NotARegularFileError,
  file_busy: FileBusyError,
  cross_device: CrossDeviceError,
  stdin_closed: StdinClosedError,
  insufficient_storage: InsufficientStorageError,
  reply_too_large: SandboxFailedError,
  sandbox_not_running: SandboxNotRunningError,
  payload_too_large: PayloadTooLargeError,
  unsupported_media_type: UnsupportedMediaTypeError,
  capacity_exceeded: CapacityError,
  internal: InternalError,
  exec_failed: ExecFailedError,
  secrets_unavailable: SecretsUnavailableError,
  runtime_unavailable: RuntimeUnavailableError,
  network_unavailable: NetworkUnavailableError,
  domain_not_found: DomainNotFoundError,
  port_closed: PortClosedError,
  sandbox_failed: SandboxFailedError,
  agent_timeout: TimeoutError,
  stream_overflow: StreamOverflowError,
};

/**
 * Builds the typed error for an error body. `status` defaults to the registry's status for the code,
 * which is what in-band stream errors (sent inside a 200 reply) need.
 */
export function errorFromBody(body: ErrorBody, status: number = errorRegistry[body.code].status): StasisError {
  const ErrorClass = errorClasses[body.code];
  return new ErrorClass({
    code: body.code,
    message: body.message,
    status,
    requestId: body.requestId,
    retryable: body.retryable,
    details: body.details,
  });
}

export function protocolError(message: string, status: number | null, requestId?: string, cause?: unknown): ProtocolError {
  return new ProtocolError({ code: "protocol_error", message, status, requestId, retryable: false, cause });
}
