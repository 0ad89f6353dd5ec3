import { describe, expect, it } from "vitest";
import { dropHopByHop, findPlaceholders, hostMatches, issuePlaceholders, makePlaceholder, replaceInHeaders, scrubHeaders } from "./placeholders.js";
import { SecretsKeyError } from "./secret-crypto.js";

describe("placeholders", () => {
  it("are random per call and name their secret", () => {
    const a = makePlaceholder("OPENAI_API_KEY");
    expect(a).toMatch(/^stasis_secret_OPENAI_API_KEY_[0-9a-f]{32}$/);
    expect(makePlaceholder("OPENAI_API_KEY")).not.toBe(a);
  });

  it("are issued only for secrets that exist and can be decrypted", () => {
    const store = {
      hostsOf: () => ["a.example"],
      reveal: (name: string) => {
        if (name === "LOST") throw new SecretsKeyError("the secrets key is missing");
        return name === "A" ? { name, hosts: ["a.example"], value: "v" } : null;
      },
    };
    expect(issuePlaceholders(store, ["A"]).A).toMatch(/^stasis_secret_A_[0-9a-f]{32}$/);
    expect(() => issuePlaceholders(store, ["A", "NOPE"])).toThrow(expect.objectContaining({ code: "secret_not_found" }) as Error);
    expect(() => issuePlaceholders(store, ["LOST"])).toThrow(expect.objectContaining({ code: "secrets_unavailable" }) as Error);
  });

  it("match hosts exactly or below a wildcard, as egress targets do", () => {
    expect(hostMatches(["api.example.com"], "API.example.com.")).toBe(true);
    expect(hostMatches(["api.example.com"], "api.example.com:443")).toBe(true);
    expect(hostMatches(["api.example.com"], "example.com")).toBe(false);
    expect(hostMatches(["api.example.com"], "evil-api.example.com")).toBe(false);
    expect(hostMatches(["*.example.com"], "a.b.example.com")).toBe(true);
    expect(hostMatches(["*.example.com"], "example.com")).toBe(false);
    expect(hostMatches(["*.example.com"], "badexample.com")).toBe(false);
  });

  it("are found in a plain-HTTP head's headers only, not its body", () => {
    const p = { A: makePlaceholder("A"), B: makePlaceholder("B"), C: makePlaceholder("C") };
    const head = Buffer.from(`POST / HTTP/1.1\r\nHost: x.example\r\nAuthorization: Bearer ${p.A}\r\nX-Other: ${p.B}\r\n\r\n${p.C}`);
    expect(findPlaceholders(head, p)).toEqual(["A", "B"]);
    expect(findPlaceholders(Buffer.from(`GET / HTTP/1.1\r\nX: ${p.C}`), p)).toEqual(["C"]);
    expect(findPlaceholders(Buffer.from("GET / HTTP/1.1\r\n\r\n"), p)).toEqual([]);
  });

  it("are replaced in header values, every occurrence, never in names", () => {
    const r = [{ name: "A", placeholder: "PH_A", value: "secret-a-value" }];
    const { headers, used } = replaceInHeaders(["Authorization", "Bearer PH_A", "X-PH_A", "PH_A,PH_A", "Accept", "*/*"], r);
    expect(headers).toEqual(["Authorization", "Bearer secret-a-value", "X-PH_A", "secret-a-value,secret-a-value", "Accept", "*/*"]);
    expect(used).toEqual(["A"]);
    expect(replaceInHeaders(["Accept", "*/*"], r).used).toEqual([]);
    expect(scrubHeaders(["X-Echo", "Bearer secret-a-value"], r)).toEqual(["X-Echo", "Bearer PH_A"]);
  });

  it("drop one hop's connection headers, keeping the body's framing", () => {
    const raw = ["Connection", "keep-alive, X-Hop", "Keep-Alive", "timeout=5", "X-Hop", "1", "Transfer-Encoding", "chunked", "Proxy-Authorization", "x", "Accept", "*/*"];
    expect(dropHopByHop(raw)).toEqual(["Transfer-Encoding", "chunked", "Accept", "*/*"]);
    expect(dropHopByHop(["Connection", "Upgrade", "Upgrade", "websocket"], true)).toEqual(["Connection", "Upgrade", "Upgrade", "websocket"]);
  });
});
