import type { ErrorCode } from "@stasis/protocol";

/** Maps the agent's error codes onto the API's registry. */
const agentErrorCodes: Record<string, ErrorCode> = {
  invalid_argument: "invalid_request",
  not_found: "file_not_found",
  already_exists: "file_exists",
  permission_denied: "permission_denied",
  not_a_directory: "not_a_directory",
  is_a_directory: "is_a_directory",
  not_empty: "directory_not_empty",
  no_such_process: "process_not_found",
  exec_failed: "exec_failed",
  too_large: "payload_too_large",
  no_space: "insufficient_storage",
  name_too_long: "name_too_long",
  busy: "file_busy",
  cross_device: "cross_device",
  symlink_loop: "symlink_loop",
  not_regular: "not_a_regular_file",
  stdin_closed: "stdin_closed",
};

/**
 * An agent older than these codes (a sandbox still running the agent it was started with) reports them
 * as io_error with Go's errno text: read it, so that such a sandbox's full disk is no retryable 500 either.
 */
const ioErrorTexts: [string, ErrorCode][] = [
  ["no space left on device", "insufficient_storage"],
  ["disk quota exceeded", "insufficient_storage"],
  ["file name too long", "name_too_long"],
  ["device or resource busy", "file_busy"],
  ["text file busy", "file_busy"],
  ["invalid cross-device link", "cross_device"],
  ["too many levels of symbolic links", "symlink_loop"],
  ["writing stdin: write |1: file already closed", "stdin_closed"],
  ["writing stdin: write |1: broken pipe", "stdin_closed"],
];

/** The API's code for an agent's error. */
export function apiCodeOf(error: { code: string; message: string }): ErrorCode {
  const code = agentErrorCodes[error.code];
  if (code) return code;
  if (error.code === "io_error") for (const [text, c] of ioErrorTexts) if (error.message.includes(text)) return c;
  return "internal";
}
