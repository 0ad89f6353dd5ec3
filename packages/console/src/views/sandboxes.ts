import type { Sandbox, SandboxState } from "@stasis/protocol";
import { api, type SandboxAction } from "../api.js";
import { age, bytes, clear, errorText, h, statusLine } from "../dom.js";
import type { View } from "../main.js";

const STATES: SandboxState[] = ["creating", "running", "paused", "hibernating", "hibernated", "resuming", "stopping", "stopped", "failed"];
const POLL_MS = 2000;

/** The sandboxes page: a live table (state, resources, CPU and memory) with filters, create and actions. */
export function sandboxesView(): View {
  const status = statusLine();
  const busy = new Map<string, string>(); // id -> what is in progress
  const lastCpu = new Map<string, { usec: number; at: number }>();
  const usage = new Map<string, string>();
  let sandboxes: Sandbox[] = [];
  let stopped = false;

  const stateFilter = h("select", { id: "filter-state" }, h("option", { value: "" }, "any"), ...STATES.map((s) => h("option", { value: s }, s)));
  const textFilter = h("input", { id: "filter-text", type: "search", placeholder: "id, template or metadata" });
  const body = h("tbody");
  const table = h(
    "table",
    { class: "sandboxes" },
    h("caption", { class: "sr-only" }, "Sandboxes"),
    h("thead", {}, h("tr", {}, ...["Sandbox", "State", "Template", "Runtime", "Resources", "CPU", "Memory", "Age", "Created", "Standby", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
    body,
  );

  const template = h("input", { id: "new-template", value: "base", required: true });
  const runtime = h("select", { id: "new-runtime" }, h("option", { value: "" }, "default"), h("option", { value: "gvisor" }, "gvisor"), h("option", { value: "crun" }, "crun"));
  const createButton = h("button", { type: "submit" }, "Create sandbox");
  const createForm = h(
    "form",
    { class: "inline", "aria-label": "Create a sandbox" },
    h("label", { for: "new-template" }, "Template"),
    template,
    h("label", { for: "new-runtime" }, "Runtime"),
    runtime,
    createButton,
  );
  createForm.addEventListener("submit", (e) => {
    e.preventDefault();
    createButton.disabled = true;
    status.set(`Creating a sandbox from ${template.value}…`);
    api.create({ template: template.value, ...(runtime.value ? { runtime: runtime.value } : {}) }).then(
      (s) => {
        status.set(`Created ${s.id}`);
        void refresh();
      },
      (err: unknown) => status.set(`Create failed: ${errorText(err)}`, true),
    ).finally(() => (createButton.disabled = false));
  });

  function act(s: Sandbox, label: string, run: () => Promise<unknown>): void {
    busy.set(s.id, label);
    draw();
    status.set(`${label} ${s.id}…`);
    run().then(
      () => status.set(`${label} ${s.id}: done`),
      (err: unknown) => status.set(`${label} ${s.id} failed: ${errorText(err)}`, true),
    ).finally(() => {
      busy.delete(s.id);
      void refresh();
    });
  }

  function actions(s: Sandbox): HTMLElement {
    const inProgress = busy.get(s.id);
    const button = (label: string, enabled: boolean, run: () => Promise<unknown>) => {
      const b = h("button", { type: "button", "aria-label": `${label} ${s.id}`, disabled: !enabled || inProgress !== undefined }, label);
      b.addEventListener("click", () => act(s, label, run));
      return b;
    };
    const awake = s.state === "running";
    const standby = s.state === "paused" || s.state === "hibernated";
    const simple = (a: SandboxAction) => () => api.action(s.id, a);
    return h(
      "td",
      { class: "actions" },
      button("Pause", awake, simple("pause")),
      button("Hibernate", awake || s.state === "paused", simple("hibernate")),
      button("Resume", standby, simple("resume")),
      button("Fork", awake || standby, () => api.fork(s.id)),
      button("Kill", true, () => api.kill(s.id)),
      inProgress ? h("span", { class: "progress", role: "progressbar", "aria-label": `${inProgress} in progress` }, `${inProgress}…`) : null,
    );
  }

  function draw(): void {
    const text = textFilter.value.trim().toLowerCase();
    const shown = sandboxes.filter((s) => !text || JSON.stringify([s.id, s.template, s.metadata]).toLowerCase().includes(text));
    clear(
      body,
      ...shown.map((s) =>
        h(
          "tr",
          { "data-id": s.id, "data-state": s.state },
          h("th", { scope: "row" }, h("a", { href: `#/sandboxes/${s.id}` }, s.id)),
          h("td", {}, h("span", { class: `state state-${s.state}` }, s.state), s.stateReason ? h("small", {}, ` ${s.stateReason}`) : null),
          h("td", {}, s.template),
          h("td", {}, s.runtime),
          h("td", {}, `${s.cpu} CPU · ${bytes(s.memoryMiB * 1048576)} · ${bytes(s.diskMiB * 1048576)} disk`),
          h("td", {}, usage.get(s.id)?.split("|")[0] ?? "–"),
          h("td", {}, usage.get(s.id)?.split("|")[1] ?? "–"),
          h("td", { title: s.createdAt }, age(s.createdAt)),
          h("td", {}, s.forkedFrom ? `fork of ${s.forkedFrom}` : s.createdVia),
          h("td", {}, s.standbyReason ?? ""),
          actions(s),
        ),
      ),
    );
    if (shown.length === 0) clear(body, h("tr", {}, h("td", { colspan: 11 }, "No sandboxes.")));
  }

  async function sampleUsage(s: Sandbox): Promise<void> {
    if (s.state !== "running") return void usage.delete(s.id);
    const m = await api.metrics(s.id);
    const now = performance.now();
    const prev = lastCpu.get(s.id);
    let cpu = "…";
    if (m.cpuUsageUsec !== null) {
      if (prev && m.cpuUsageUsec >= prev.usec) cpu = `${((100 * (m.cpuUsageUsec - prev.usec)) / ((now - prev.at) * 1000)).toFixed(1)} %`;
      lastCpu.set(s.id, { usec: m.cpuUsageUsec, at: now });
    }
    usage.set(s.id, `${cpu}|${bytes(m.memoryBytes)} / ${bytes(m.memoryLimitBytes)}`);
  }

  async function refresh(): Promise<void> {
    try {
      sandboxes = (await api.list(stateFilter.value || undefined)).sandboxes;
      await Promise.all(sandboxes.map((s) => sampleUsage(s).catch(() => usage.delete(s.id))));
      draw();
    } catch (err) {
      status.set(`Could not list sandboxes: ${errorText(err)}`, true);
    }
  }

  stateFilter.addEventListener("change", () => void refresh());
  textFilter.addEventListener("input", draw);
  void refresh();
  const timer = setInterval(() => {
    if (!stopped) void refresh();
  }, POLL_MS);

  const el = h(
    "section",
    { "aria-labelledby": "sandboxes-title" },
    h("h1", { id: "sandboxes-title" }, "Sandboxes"),
    createForm,
    h("div", { class: "filters", role: "search" }, h("label", { for: "filter-state" }, "State"), stateFilter, h("label", { for: "filter-text" }, "Filter"), textFilter),
    status.el,
    h("div", { class: "scroll" }, table),
  );
  return {
    el,
    dispose() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
