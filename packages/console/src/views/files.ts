import type { FileInfo } from "@stasis/protocol";
import { api } from "../api.js";
import { bytes, clear, errorText, h, statusLine } from "../dom.js";

/** Text files up to this size open in the editor; larger ones are download-only. */
const EDIT_LIMIT = 256 * 1024;

const join = (dir: string, name: string): string => (dir.endsWith("/") ? dir : dir + "/") + name;
const parent = (path: string): string => path.replace(/\/[^/]+\/?$/, "") || "/";

/** A file browser: list a folder, go up and down, download, upload into it, edit small text files. */
export function filesPanel(id: string): { el: HTMLElement; start(): void } {
  let dir = "/root";
  const status = statusLine();
  const pathInput = h("input", { id: "files-path", value: dir });
  const list = h("ul", { class: "files", "aria-label": "Files" });
  const upload = h("input", { id: "files-upload", type: "file", multiple: true });
  const editor = h("div", { class: "editor" });

  const go = h("form", { class: "inline", "aria-label": "Folder" }, h("label", { for: "files-path" }, "Folder"), pathInput, h("button", { type: "submit" }, "Open"));
  go.addEventListener("submit", (e) => {
    e.preventDefault();
    void open(pathInput.value);
  });
  upload.addEventListener("change", () => {
    const chosen = [...(upload.files ?? [])];
    void (async () => {
      for (const file of chosen) {
        status.set(`Uploading ${file.name}…`);
        try {
          await api.writeFile(id, join(dir, file.name), file);
          status.set(`Uploaded ${file.name} (${bytes(file.size)})`);
        } catch (err) {
          status.set(`Upload of ${file.name} failed: ${errorText(err)}`, true);
        }
      }
      upload.value = "";
      await open(dir);
    })();
  });

  async function download(f: FileInfo): Promise<void> {
    status.set(`Downloading ${f.name}…`);
    try {
      const blob = await api.readFile(id, f.path);
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: f.name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      status.set(`Downloaded ${f.name}`);
    } catch (err) {
      status.set(`Download failed: ${errorText(err)}`, true);
    }
  }

  async function edit(f: FileInfo): Promise<void> {
    const text = await (await api.readFile(id, f.path)).text();
    const area = h("textarea", { id: "editor-text", rows: 16, spellcheck: false });
    area.value = text;
    const save = h("button", { type: "submit" }, "Save");
    const close = h("button", { type: "button" }, "Close");
    close.addEventListener("click", () => clear(editor));
    const form = h("form", { "aria-label": `Edit ${f.path}` }, h("label", { for: "editor-text" }, `Editing ${f.path}`), area, h("div", {}, save, close));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      api.writeFile(id, f.path, area.value).then(
        () => status.set(`Saved ${f.path}`),
        (err: unknown) => status.set(`Save failed: ${errorText(err)}`, true),
      );
    });
    clear(editor, form);
    area.focus();
  }

  function row(f: FileInfo): HTMLElement {
    const name =
      f.type === "dir"
        ? h("button", { type: "button", class: "link", "aria-label": `Open folder ${f.name}`, onclick: () => void open(f.path) }, `${f.name}/`)
        : h("span", {}, f.name);
    const fileActions =
      f.type === "file"
        ? [
            h("button", { type: "button", "aria-label": `Download ${f.name}`, onclick: () => void download(f) }, "Download"),
            f.size <= EDIT_LIMIT ? h("button", { type: "button", "aria-label": `Edit ${f.name}`, onclick: () => void edit(f).catch((err: unknown) => status.set(errorText(err), true)) }, "Edit") : null,
          ]
        : [];
    return h("li", { "data-name": f.name }, name, h("span", { class: "meta" }, f.type === "file" ? bytes(f.size) : f.type), ...fileActions);
  }

  async function open(path: string): Promise<void> {
    try {
      const listing = await api.listFiles(id, path);
      dir = path;
      pathInput.value = path;
      const entries = [...listing.entries].sort((a, b) => Number(b.type === "dir") - Number(a.type === "dir") || a.name.localeCompare(b.name));
      const up = path === "/" ? null : h("li", {}, h("button", { type: "button", class: "link", "aria-label": "Up to the parent folder", onclick: () => void open(parent(path)) }, "../"));
      clear(list, up, ...entries.map(row));
      if (listing.truncated) list.append(h("li", {}, "(listing truncated)"));
    } catch (err) {
      status.set(`Could not list ${path}: ${errorText(err)}`, true);
    }
  }

  const el = h("div", {}, go, h("label", { for: "files-upload" }, "Upload into this folder"), upload, status.el, list, editor);
  return { el, start: () => void open(dir) };
}
