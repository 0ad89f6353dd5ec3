import "./style.css";
import { api, saveKey, savedKey } from "./api.js";
import { clear, errorText, h, statusLine } from "./dom.js";
import { hostView } from "./views/host.js";
import { sandboxView } from "./views/sandbox.js";
import { sandboxesView } from "./views/sandboxes.js";
import { templatesView } from "./views/templates.js";

/** A page: its element, and what to stop (polls, sockets) when the user leaves it. */
export interface View {
  el: HTMLElement;
  dispose(): void;
}

const app = document.getElementById("app")!;
let current: View | null = null;

function login(): void {
  const status = statusLine();
  const input = h("input", { id: "key", type: "password", name: "key", autocomplete: "current-password", required: true });
  const form = h(
    "form",
    { class: "login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Stasis console"),
    h("label", { for: "key" }, "API key"),
    input,
    h("button", { type: "submit" }, "Open console"),
    status.el,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    status.set("Checking the key…");
    api.info(input.value).then(
      () => {
        saveKey(input.value);
        if (!location.hash) location.hash = "#/sandboxes";
        render();
      },
      (err: unknown) => status.set(`Refused: ${errorText(err)}`, true),
    );
  });
  clear(app, h("main", { id: "main" }, form));
  input.focus();
}

function nav(active: string): HTMLElement {
  const link = (href: string, label: string) => h("a", { href, "aria-current": active === href ? "page" : undefined }, label);
  const logout = h("button", { type: "button", class: "link" }, "Log out");
  logout.addEventListener("click", () => {
    saveKey(null);
    render();
  });
  return h("nav", { "aria-label": "Console" }, h("span", { class: "brand" }, "Stasis"), link("#/sandboxes", "Sandboxes"), link("#/templates", "Templates"), link("#/host", "Host"), logout);
}

function render(): void {
  current?.dispose();
  current = null;
  if (!savedKey()) return login();
  const [, section = "sandboxes", id] = location.hash.split("/");
  let view: View;
  if (section === "sandboxes" && id) view = sandboxView(decodeURIComponent(id));
  else if (section === "templates") view = templatesView();
  else if (section === "host") view = hostView();
  else view = sandboxesView();
  current = view;
  const main = h("main", { id: "main", tabindex: -1 }, view.el);
  clear(app, nav(`#/${section}`), main);
  const heading = main.querySelector("h1");
  if (heading) document.title = `${heading.textContent} · Stasis`;
}

window.addEventListener("hashchange", render);
render();
