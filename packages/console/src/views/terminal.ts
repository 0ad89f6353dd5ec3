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
    let pid: number | undefined;
    let asleep = false;
    // Keys typed while the socket connects (a wake takes a while) go out once it is open.
    const pending: Uint8Array[] = [];
    // A hibernation closes the socket (4001); the shell lives on in the image. The next key wakes the
    // sandbox by connecting to the same terminal again.
    const connect = (): WebSocket => {
      const ws = ptySocket(id, t.cols, t.rows, pid);
      socket = ws;
      ws.binaryType = "arraybuffer";
      ws.onopen = () => {
        state.textContent = "Connected";
        for (const keys of pending.splice(0)) ws.send(keys);
      };
      ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
        if (typeof e.data === "string") {
          const msg = JSON.parse(e.data) as { type: string; pid?: number; exitCode?: number; message?: string };
          if (msg.type === "started" && typeof msg.pid === "number") pid = msg.pid;
          if (msg.type === "exit") {
            pid = undefined;
            state.textContent = `The shell exited (${msg.exitCode ?? "?"})`;
          }
          if (msg.type === "error") state.textContent = `Error: ${msg.message ?? ""}`;
          return;
        }
        t.write(new Uint8Array(e.data));
      };
      ws.onclose = (e) => {
        if (socket !== ws) return;
        asleep = e.code === 4001 && pid !== undefined;
        state.textContent = asleep ? "The sandbox hibernated: press a key to wake it and reconnect" : `Disconnected (${e.code})`;
      };
      return ws;
    };
    connect();
    t.onData((data) => {
      if (asleep) {
        asleep = false;
        state.textContent = "Waking the sandbox…";
        connect();
      }
      if (socket?.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
      else if (socket?.readyState === WebSocket.CONNECTING) pending.push(encoder.encode(data));
    });
    t.onResize(({ cols, rows }) => {
      if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "resize", cols, rows }));
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
