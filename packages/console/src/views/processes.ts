import type { CommandEvent, ProcessInfo as Process } from "@stasis/protocol";
import { api } from "../api.js";
import { clear, errorText, h, statusLine } from "../dom.js";

/** Shown log text is capped: a chatty process must not grow the page without bound. */
const LOG_LIMIT = 256 * 1024;

/** Processes started through the API (terminals included), with live logs and kill. */
export function processesPanel(id: string): { el: HTMLElement; start(): void; dispose(): void } {
  const status = statusLine();
  const list = h("ul", { class: "files", "aria-label": "Processes" });
  const log = h("pre", { class: "log", "aria-label": "Process log", tabindex: 0 });
  const refresh = h("button", { type: "button" }, "Refresh processes");
  let following: AbortController | null = null;

  function follow(p: Process): void {
    following?.abort();
    const ctl = new AbortController();
    following = ctl;
    log.textContent = "";
    status.set(`Following ${p.pid}: ${p.cmd.join(" ")}`);
    const append = (text: string) => {
      const next = (log.textContent ?? "") + text;
      log.textContent = next.length > LOG_LIMIT ? next.slice(-LOG_LIMIT) : next;
      log.scrollTop = log.scrollHeight;
    };
    api
      .attach(id, p.pid, (e: CommandEvent) => {
        if (e.type === "stdout" || e.type === "stderr") append(e.data);
        else if (e.type === "exit") append(`\n[exited ${e.exitCode}${e.signal ? ` by ${e.signal}` : ""}]\n`);
        else if (e.type === "error") append(`\n[error: ${e.error.message}]\n`);
      }, ctl.signal)
      .catch((err: unknown) => {
        if (!ctl.signal.aborted) status.set(`Could not follow ${p.pid}: ${errorText(err)}`, true);
      });
  }

  async function load(): Promise<void> {
    try {
      const { processes } = await api.processes(id);
      clear(
        list,
        ...processes.map((p) =>
          h(
            "li",
            { "data-pid": p.pid },
            h("span", { class: "meta" }, String(p.pid)),
            h("code", {}, p.cmd.join(" ").slice(0, 120)),
            h("span", { class: "meta" }, p.running ? "running" : `exited ${p.exitCode ?? p.signal ?? ""}`),
            h("button", { type: "button", "aria-label": `Logs of ${p.pid}`, onclick: () => follow(p) }, "Logs"),
            p.running ? h("button", { type: "button", "aria-label": `Kill ${p.pid}`, onclick: () => void api.killProcess(id, p.pid).then(load, (err: unknown) => status.set(errorText(err), true)) }, "Kill") : null,
          ),
        ),
      );
      if (processes.length === 0) list.append(h("li", {}, "No processes."));
    } catch (err) {
      status.set(`Could not list processes: ${errorText(err)}`, true);
    }
  }
  refresh.addEventListener("click", () => void load());
  return { el: h("div", {}, refresh, status.el, list, log), start: () => void load(), dispose: () => following?.abort() };
}
