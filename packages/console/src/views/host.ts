import { api } from "../api.js";
import { clear, errorText, h, statusLine } from "../dom.js";
import type { View } from "../main.js";

/** `stasis doctor`'s host checks, run by the daemon when the page opens. */
function doctor(): HTMLElement {
  const box = h("div", {}, h("h2", {}, "Doctor"), h("p", { role: "status" }, "Running the host checks…"));
  api.doctor().then(
    ({ checks }) =>
      clear(
        box,
        h("h2", {}, "Doctor"),
        h(
          "ul",
          { class: "doctor", "aria-label": "Host checks" },
          ...checks.map((c) => h("li", { "data-ok": String(c.ok) }, `${c.ok ? "✓" : c.severity === "error" ? "✗" : "!"} ${c.name}: ${c.detail}`, !c.ok && c.fix ? h("small", {}, ` (fix: ${c.fix})`) : null)),
        ),
      ),
    (err: unknown) => clear(box, h("h2", {}, "Doctor"), h("p", { class: "status error" }, errorText(err))),
  );
  return box;
}

/** Names only: the API never returns a secret's value, nor an E2B key after its creation. */
function credentials(): HTMLElement {
  const box = h("div", {}, h("h2", {}, "Secrets"), h("p", {}, "…"), h("h2", {}, "E2B keys"), h("p", {}, "…"));
  Promise.all([api.secrets(), api.e2bKeys()]).then(
    ([{ secrets }, { keys }]) =>
      clear(
        box,
        h("h2", {}, "Secrets"),
        secrets.length ? h("ul", { "aria-label": "Secrets" }, ...secrets.map((s) => h("li", {}, `${s.name} → ${s.hosts.join(", ")}`))) : h("p", {}, "None."),
        h("h2", {}, "E2B keys"),
        keys.length ? h("ul", { "aria-label": "E2B keys" }, ...keys.map((k) => h("li", {}, `${k.name} (${k.prefix}…, last used ${k.lastUsedAt ?? "never"})`))) : h("p", {}, "None."),
      ),
    (err: unknown) => clear(box, h("p", { class: "status error" }, errorText(err))),
  );
  return box;
}

/** The host: daemon version, capacity, runtimes (and why one is unavailable), warm pools, doctor's checks, secrets and keys by name. */
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
  return { el: h("section", { "aria-labelledby": "host-title" }, h("h1", { id: "host-title" }, "Host"), status.el, box, doctor(), credentials()), dispose() {} };
}
