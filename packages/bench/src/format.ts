import type { Unit } from "./result.js";

/** A value with its unit, with as many digits as its size deserves. */
export function formatValue(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return "-";
  const abs = Math.abs(value);
  const digits = unit === "count" ? 0 : abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  const text = value.toFixed(digits);
  switch (unit) {
    case "count":
      return text;
    case "%":
      return `${text}%`;
    case "/s":
      return `${text}/s`;
    default:
      return `${text} ${unit}`;
  }
}

export function mib(bytes: number): number {
  return bytes / 1048576;
}

export const formatMs = (ms: number) => formatValue(ms, "ms");
