import type { TemplateBuildEvent } from "@stasis/protocol";
import { api } from "../api.js";
import { bytes, clear, errorText, h, statusLine } from "../dom.js";
import type { View } from "../main.js";
import { tar } from "../tar.js";

/** Templates: every version with its pool size (editable), and a build from a Dockerfile with its log streamed. */
export function templatesView(): View {
  const status = statusLine();
  const body = h("tbody");
  const table = h(
    "table",
    {},
    h("caption", { class: "sr-only" }, "Template versions"),
    h("thead", {}, h("tr", {}, ...["Template", "Latest", "From", "Built", "Size", "Snapshot", "Pool"].map((c) => h("th", { scope: "col" }, c)))),
    body,
  );
  /** The version's warm-pool size: booted, frozen sandboxes kept ready for creates. */
  function poolControl(ref: string, pool: number): HTMLElement {
    const input = h("input", { type: "number", min: 0, max: 64, value: pool, "aria-label": `Pool size of ${ref}`, class: "pool" });
    const form = h("form", { class: "inline" }, input, h("button", { type: "submit", "aria-label": `Set the pool size of ${ref}` }, "Set"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      status.set(`Setting the pool of ${ref} to ${input.value}…`);
      api.setPool(ref, Number(input.value)).then(
        (t) => status.set(`Pool of ${t.ref}: ${t.pool}`),
        (err: unknown) => status.set(`Could not set the pool: ${errorText(err)}`, true),
      );
    });
    return form;
  }

  async function load(): Promise<void> {
    try {
      const { templates } = await api.templates();
      clear(
        body,
        ...templates.map((t) =>
          h(
            "tr",
            { "data-ref": t.ref },
            h("th", { scope: "row" }, t.ref),
            h("td", {}, t.latest ? "yes" : ""),
            h("td", {}, t.from ?? t.source),
            h("td", { title: t.builtAt }, new Date(t.builtAt).toLocaleString()),
            h("td", {}, bytes(t.sizeBytes)),
            h("td", {}, t.snapshot ? "yes" : "no"),
            h("td", {}, poolControl(t.ref, t.pool)),
          ),
        ),
      );
    } catch (err) {
      status.set(`Could not list templates: ${errorText(err)}`, true);
    }
  }

  const name = h("input", { id: "build-name", required: true, pattern: "[a-z0-9][a-z0-9._-]*", value: "" });
  const dockerfile = h("textarea", { id: "build-dockerfile", rows: 6, spellcheck: false, required: true });
  dockerfile.value = "FROM base\nRUN echo built-by-$((6*7)) && echo hello > /hello.txt\n";
  const log = h("pre", { class: "log", "aria-live": "polite", "aria-label": "Build log", tabindex: 0 });
  const submit = h("button", { type: "submit" }, "Build");
  const form = h(
    "form",
    { "aria-label": "Build a template" },
    h("h2", {}, "Build a template"),
    h("label", { for: "build-name" }, "Name"),
    name,
    h("label", { for: "build-dockerfile" }, "Dockerfile"),
    dockerfile,
    submit,
  );
  const line = (e: TemplateBuildEvent): string => {
    switch (e.type) {
      case "step":
        return `[${e.step}/${e.total}] ${e.instruction}${e.cached ? " (cached)" : ""}\n`;
      case "log":
        return e.data.endsWith("\n") ? e.data : e.data + "\n";
      default:
        return JSON.stringify(e) + "\n";
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submit.disabled = true;
    log.textContent = "";
    status.set(`Building ${name.value}…`);
    let outcome = "";
    api
      .buildTemplate(name.value, tar([{ name: "Dockerfile", content: dockerfile.value }]), (event) => {
        log.textContent += line(event);
        if (event.type === "done" || event.type === "error") outcome = event.type;
      })
      .then(
        () => status.set(outcome === "done" ? `Built ${name.value}` : `Build of ${name.value} failed`, outcome !== "done"),
        (err: unknown) => status.set(`Build failed: ${errorText(err)}`, true),
      )
      .finally(() => {
        submit.disabled = false;
        void load();
      });
  });

  void load();
  const el = h("section", { "aria-labelledby": "templates-title" }, h("h1", { id: "templates-title" }, "Templates"), status.el, h("div", { class: "scroll" }, table), form, log);
  return { el, dispose() {} };
}
