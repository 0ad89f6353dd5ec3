/** The API version: bumped when the wire contract changes. */
export const PROTOCOL_VERSION = "0.1.0";
