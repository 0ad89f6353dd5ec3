import type { Sandbox } from "@stasis/protocol";
import { api } from "../api.js";
import { age, bytes, clear, errorText, h, statusLine } from "../dom.js";
import type { View } from "../main.js";
import { chartsPanel } from "./charts.js";
import { filesPanel } from "./files.js";
import { processesPanel } from "./processes.js";
import { terminalPanel } from "./terminal.js";

/** Ports a process listens on, each with a signed preview link (private sandboxes need the link's cookie). */
function portsPanel(id: string): { el: HTMLElement; start(): void } {
  const status = statusLine();
  const list = h("ul", { class: "ports", "aria-label": "Listening ports" });
  const refresh = h("button", { type: "button" }, "Refresh ports");
  async function load(): Promise<void> {
    try {
      const { ports } = await api.ports(id);
      const links = await Promise.all(ports.map(async (p) => ({ port: p.port, url: (await api.signUrl(id, p.port)).url })));
      clear(list, ...links.map((p) => h("li", {}, `${p.port} `, h("a", { href: p.url, target: "_blank", rel: "noopener noreferrer", "aria-label": `Preview port ${p.port}` }, "Open preview"))));
      status.set(ports.length ? "" : "No process listens on a port.");
    } catch (err) {
      status.set(`Could not list ports: ${errorText(err)}`, true);
    }
  }
  refresh.addEventListener("click", () => void load());
  return { el: h("div", {}, refresh, status.el, list), start: () => void load() };
}

/** One sandbox: a summary and tabs for its terminal, files, processes, ports and charts of the last hour. */
export function sandboxView(id: string): View {
  const summary = h("dl", { class: "summary" });
  const status = statusLine();
  const terminal = terminalPanel(id);
  const files = filesPanel(id);
  const ports = portsPanel(id);
  const charts = chartsPanel(id);
  const processes = processesPanel(id);
  const panels = { Terminal: terminal, Files: files, Processes: processes, Ports: ports, Charts: charts };
  const started = new Set<string>();
  const tabs = h("div", { role: "tablist", "aria-label": "Sandbox views" });
  const panelBox = h("div", {});

  function select(name: keyof typeof panels, focus = false): void {
    for (const b of tabs.querySelectorAll<HTMLButtonElement>("[role=tab]")) {
      const on = b.dataset.tab === name;
      b.setAttribute("aria-selected", String(on));
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    }
    for (const [n, p] of Object.entries(panels)) p.el.hidden = n !== name;
    if (!started.has(name)) {
      started.add(name);
      panels[name].start();
    }
  }
  const names = Object.keys(panels) as (keyof typeof panels)[];
  for (const name of names) {
    const panelId = `panel-${name.toLowerCase()}`;
    const b = h("button", { type: "button", role: "tab", id: `tab-${name.toLowerCase()}`, "data-tab": name, "aria-controls": panelId }, name);
    b.addEventListener("click", () => select(name));
    // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
    b.addEventListener("keydown", (e) => {
      const i = names.indexOf(name);
      if (e.key === "ArrowRight") select(names[(i + 1) % names.length]!, true);
      if (e.key === "ArrowLeft") select(names[(i + names.length - 1) % names.length]!, true);
    });
    tabs.append(b);
    const p = panels[name];
    p.el.id = panelId;
    p.el.setAttribute("role", "tabpanel");
    p.el.setAttribute("aria-labelledby", b.id);
    panelBox.append(p.el);
  }

  function show(s: Sandbox): void {
    const item = (k: string, v: string) => [h("dt", {}, k), h("dd", {}, v)];
    clear(
      summary,
      ...item("State", s.state + (s.standbyReason ? ` (${s.standbyReason})` : "")),
      ...item("Template", s.template),
      ...item("Runtime", s.runtime),
      ...item("Resources", `${s.cpu} CPU, ${bytes(s.memoryMiB * 1048576)} memory, ${bytes(s.diskMiB * 1048576)} disk`),
      ...item("Age", age(s.createdAt)),
      ...item("Created", s.forkedFrom ? `fork of ${s.forkedFrom}` : s.createdVia),
    );
    summary.dataset.state = s.state;
  }
  async function refresh(): Promise<void> {
    try {
      show(await api.get(id));
    } catch (err) {
      status.set(errorText(err), true);
    }
  }
  void refresh();
  const timer = setInterval(() => void refresh(), 3000);
  const el = h("section", { "aria-labelledby": "sandbox-title" }, h("p", {}, h("a", { href: "#/sandboxes" }, "← All sandboxes")), h("h1", { id: "sandbox-title" }, id), summary, status.el, tabs, panelBox);
  select("Terminal");
  return {
    el,
    dispose() {
      clearInterval(timer);
      terminal.dispose();
      charts.dispose();
      processes.dispose();
    },
  };
}
