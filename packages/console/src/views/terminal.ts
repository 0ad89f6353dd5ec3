import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { ptySocket } from "../api.js";
import { h } from "../dom.js";

/** xterm.js over the daemon's PTY WebSocket: binary frames both ways, JSON text frames for control. */
export function terminalPanel(id: string): { el: HTMLElement; start(): void; dispose(): void } {
  const host = h("div", { class: "terminal", "aria-label": `Terminal of ${id}` });
  const state = h("p", { role: "status", class: "status" }, "Connecting…");
  const el = h("div", {}, state, h("p", { class: "hint" }, "Tab completes in the shell; Shift+Tab leaves the terminal."), host);
  let term: Terminal | null = null;
  let socket: WebSocket | null = null;
  let observer: ResizeObserver | null = null;
  const encoder = new TextEncoder();

  function start(): void {
    if (term) return;
    term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000, screenReaderMode: true });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host);
    fit.fit();
    const t = term;
    const ws = ptySocket(id, t.cols, t.rows);
    socket = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => (state.textContent = "Connected");
    ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
      if (typeof e.data === "string") {
        const msg = JSON.parse(e.data) as { type: string; exitCode?: number; message?: string };
        if (msg.type === "exit") state.textContent = `The shell exited (${msg.exitCode ?? "?"})`;
        if (msg.type === "error") state.textContent = `Error: ${msg.message ?? ""}`;
        return;
      }
      t.write(new Uint8Array(e.data));
    };
    ws.onclose = (e) => (state.textContent = e.code === 4001 ? "The sandbox hibernated: reopen the tab to wake it" : `Disconnected (${e.code})`);
    t.onData((data) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
    });
    t.onResize(({ cols, rows }) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", cols, rows }));
    });
    observer = new ResizeObserver(() => fit.fit());
    observer.observe(host);
    t.focus();
  }

  return {
    el,
    start,
    dispose() {
      observer?.disconnect();
      socket?.close();
      term?.dispose();
    },
  };
}
