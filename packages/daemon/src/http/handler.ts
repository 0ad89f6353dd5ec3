import type { RouteId } from "@stasis/protocol";
import type { Context } from "hono";
import type { Services } from "./services.js";

// Shared by app.ts, which mounts the routes, and routes/*, which implement them: in its own module so that
// neither imports the other.

/** What the app's middleware puts on every request. */
export type AppEnv = { Variables: { requestId: string } };

export type Handler = (c: Context<AppEnv>, services: Services) => Promise<Response> | Response;
export type Handlers = Record<RouteId, Handler>;
