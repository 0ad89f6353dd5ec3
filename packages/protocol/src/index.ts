export * from "./errors.js";
export * from "./sandboxes.js";
export * from "./commands.js";
export * from "./files.js";
export * from "./system.js";
export * from "./e2b-keys.js";
export * from "./routes.js";
export * from "./version.js";
export { buildOpenApi } from "./openapi/build-openapi.js";
