import { ApiError } from "../errors/api-error.js";
import { FRAME_MARKER, FRAME_PREFIX_BYTES, MAX_FRAME_HEADER, MAX_SENT_PAYLOAD } from "./agent-protocol.js";
import { crc32 } from "./crc32.js";

/**
 * Completes a request torn by a daemon killed mid-write: 0xff bytes end no line and make no valid frame
 * lengths, so the agent either reads them into the torn message (which then fails its JSON or crc) or
 * drops them to the newline. Long enough for the largest torn frame this daemon writes (whose lengths
 * the padding may have completed to MAX_SENT_PAYLOAD + 64 KiB), then a newline.
 */
export const RESYNC_PADDING = Buffer.concat([Buffer.alloc(MAX_SENT_PAYLOAD + 2 * MAX_FRAME_HEADER + FRAME_PREFIX_BYTES, 0xff), Buffer.from("\n")]);

/** A frame's bytes (docs/agent-protocol.md): marker, header and payload lengths (u32 BE), JSON header, payload. */
export function encodeFrame(header: object, payload: Buffer): Buffer[] {
  // The crc lets the agent refuse a frame torn by a daemon that died mid-write.
  const json = Buffer.from(JSON.stringify(payload.length > 0 ? { ...header, crc: crc32(payload) } : header), "utf8");
  if (json.length > MAX_FRAME_HEADER || payload.length > MAX_SENT_PAYLOAD) {
    throw new ApiError("internal", `a frame of ${json.length}+${payload.length} bytes exceeds the protocol's limits`);
  }
  const prefix = Buffer.allocUnsafe(FRAME_PREFIX_BYTES);
  prefix[0] = FRAME_MARKER;
  prefix.writeUInt32BE(json.length, 1);
  prefix.writeUInt32BE(payload.length, 5);
  const head = Buffer.concat([prefix, json]);
  return payload.length > 0 ? [head, payload] : [head];
}
