import type { SandboxMetricsHistory } from "@stasis/protocol";
import { api } from "../api.js";
import { bytes, clear, errorText, h, statusLine } from "../dom.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 600;
const H = 140;

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** One line chart over the last hour (x: time, y: 0..max), with its latest value in the title. */
function chart(title: string, points: { t: number; v: number }[], format: (v: number) => string, fixedMax?: number): HTMLElement {
  const now = Date.now();
  const from = now - 3600_000;
  const max = fixedMax ?? Math.max(1, ...points.map((p) => p.v));
  const x = (t: number) => ((t - from) / 3600_000) * W;
  const y = (v: number) => H - (v / max) * (H - 4);
  const box = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", height: H, role: "img", "aria-label": `${title} over the last hour` });
  box.append(svg("rect", { x: 0, y: 0, width: W, height: H, fill: "none", stroke: "#9ca3af" }));
  if (points.length > 0) box.append(svg("polyline", { points: points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" "), fill: "none", stroke: "#2563eb", "stroke-width": 1.5 }));
  const last = points.at(-1);
  if (last) box.append(svg("circle", { cx: x(last.t).toFixed(1), cy: y(last.v).toFixed(1), r: 3, fill: "#2563eb" }));
  return h("figure", { class: "chart" }, h("figcaption", {}, `${title}: ${last ? format(last.v) : "no samples yet"} (max ${format(max)})`), box);
}

/** CPU, memory and network of the last hour, from the daemon's own history (no Prometheus). */
export function chartsPanel(id: string): { el: HTMLElement; start(): void; dispose(): void } {
  const status = statusLine();
  const box = h("div", { class: "charts" });
  let timer: ReturnType<typeof setInterval> | null = null;

  function draw(history: SandboxMetricsHistory): void {
    const s = history.samples.map((m) => ({ ...m, t: Date.parse(m.at) }));
    const rate = (key: "networkSentBytes" | "networkReceivedBytes") =>
      s.slice(1).flatMap((m, i) => {
        const prev = s[i]!;
        const a = prev[key];
        const b = m[key];
        return a === null || b === null || b < a || m.t <= prev.t ? [] : [{ t: m.t, v: ((b - a) * 1000) / (m.t - prev.t) }];
      });
    clear(
      box,
      chart("CPU", s.map((m) => ({ t: m.t, v: m.cpuPct })), (v) => `${v.toFixed(1)} %`, 100),
      chart("Memory", s.map((m) => ({ t: m.t, v: m.memoryBytes })), bytes, s.at(-1)?.memoryLimitBytes),
      chart("Network sent", rate("networkSentBytes"), (v) => `${bytes(v)}/s`),
      chart("Network received", rate("networkReceivedBytes"), (v) => `${bytes(v)}/s`),
    );
    status.set(`${s.length} samples, every ${history.intervalMs / 1000} s while running`);
  }
  async function load(): Promise<void> {
    try {
      draw(await api.metricsHistory(id));
    } catch (err) {
      status.set(`Could not read the history: ${errorText(err)}`, true);
    }
  }
  return {
    el: h("div", {}, status.el, box),
    start() {
      void load();
      timer = setInterval(() => void load(), 5000);
    },
    dispose() {
      if (timer) clearInterval(timer);
    },
  };
}
