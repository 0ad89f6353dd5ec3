import { describe, expect, it } from "vitest";
import { LineSplitter } from "./line-splitter.js";

describe("LineSplitter", () => {
  it("joins lines split across chunks and splits several per chunk", () => {
    const lines: string[] = [];
    const s = new LineSplitter(100, (l) => lines.push(l.toString()), () => {});
    s.push(Buffer.from("ab"));
    s.push(Buffer.from("c\nde\nf"));
    s.push(Buffer.from("\n\n"));
    expect(lines).toEqual(["abc", "de", "f"]);
  });

  it("drops an over-long line, reports it, and recovers at the next newline", () => {
    const lines: string[] = [];
    const over: number[] = [];
    const s = new LineSplitter(5, (l) => lines.push(l.toString()), (n) => over.push(n));
    s.push(Buffer.from("0123"));
    s.push(Buffer.from("456789"));
    s.push(Buffer.from("xx\nok\n"));
    expect(lines).toEqual(["ok"]);
    expect(over).toHaveLength(1);
  });
});
