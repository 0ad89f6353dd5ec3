import { api } from "../api.js";
import { clear, errorText, h, statusLine } from "../dom.js";
import type { View } from "../main.js";

/** The host: daemon version, capacity, runtimes (and why one is unavailable), warm pools. */
export function hostView(): View {
  const status = statusLine();
  const box = h("div", {});
  api.info().then(
    (info) => {
      clear(
        box,
        h("dl", { class: "summary" }, h("dt", {}, "Version"), h("dd", {}, info.version), h("dt", {}, "Default runtime"), h("dd", {}, info.defaultRuntime), h("dt", {}, "Sandboxes"), h("dd", {}, `${info.sandboxes.running} running of ${info.sandboxes.total}, at most ${info.sandboxes.max}`)),
        h("h2", {}, "Runtimes"),
        h("ul", {}, ...info.runtimes.map((r) => h("li", {}, `${r.name}: ${r.available ? "available" : `unavailable (${r.reason ?? "?"})`}`))),
        h("h2", {}, "Warm pools"),
        info.warmPools.length ? h("ul", {}, ...info.warmPools.map((p) => h("li", {}, `${p.template}: ${p.ready} ready, ${p.booting} booting, size ${p.size}`))) : h("p", {}, "None configured."),
      );
    },
    (err: unknown) => status.set(errorText(err), true),
  );
  return { el: h("section", { "aria-labelledby": "host-title" }, h("h1", { id: "host-title" }, "Host"), status.el, box), dispose() {} };
}
