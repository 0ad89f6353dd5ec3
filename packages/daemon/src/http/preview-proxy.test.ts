import { describe, expect, it } from "vitest";
import { listeningPorts } from "../services/preview-service.js";
import { previewRouteOf } from "./preview-proxy.js";

describe("which requests are for a sandbox's port", () => {
  const id = "sbx_0123456789abcdef";

  it("by host name <port>-<id>.<domain>, with or without a port, any case", () => {
    expect(previewRouteOf({ host: `8000-${id}.localhost:7070` }, "localhost")).toEqual({ sandboxId: id, port: 8000 });
    expect(previewRouteOf({ host: `3000-${id}.Preview.Example.com` }, "preview.example.com")).toEqual({ sandboxId: id, port: 3000 });
  });

  it("by E2B's headers, but never envd's port (the daemon's own E2B surface)", () => {
    expect(previewRouteOf({ host: "127.0.0.1:7070", "e2b-sandbox-id": id, "e2b-sandbox-port": "5173" }, "localhost")).toEqual({ sandboxId: id, port: 5173 });
    expect(previewRouteOf({ host: "127.0.0.1:7070", "e2b-sandbox-id": id, "e2b-sandbox-port": "49983" }, "localhost")).toBeNull();
  });

  it("not the API's own host, nor malformed names or ports", () => {
    for (const host of ["127.0.0.1:7070", "localhost:7070", `0-${id}.localhost`, `70000-${id}.localhost`, `8000-sbx_short.localhost`, `8000-${id}.localhost.evil.com`, `x8000-${id}.localhost`]) {
      expect(previewRouteOf({ host }, "localhost")).toBeNull();
    }
  });
});

describe("listening ports from /proc/net/tcp", () => {
  it("keeps LISTEN sockets (state 0A) of IPv4 and IPv6, once each", () => {
    const text = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1",
      "   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2",
      "   2: 0A000002:9C40 C6120002:0050 01 00000000:00000000 00:00000000 00000000     0        0 3",
      "   0: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 4",
    ].join("\n");
    expect(listeningPorts(text)).toEqual([3306, 8000]);
  });
});
