// Docker's word splitting and variable substitution, for Dockerfile arguments.
import { TemplateSpecError } from "../template-definition.js";

/** Splits on whitespace outside quotes, keeping quotes and escapes for expandWord. */
export function splitWords(s: string): string[] {
  const words: string[] = [];
  let cur = "";
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (quote === null && /\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
      continue;
    }
    inWord = true;
    cur += c;
    if (c === "\\" && quote !== "'" && i + 1 < s.length) cur += s[++i];
    else if (quote === null && (c === '"' || c === "'")) quote = c;
    else if (c === quote) quote = null;
  }
  if (inWord) words.push(cur);
  return words;
}

/**
 * Docker's word processing: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` (and without the colon),
 * `${VAR:?message}`; `\$` escapes. With `shell`, quotes are removed ('...' literal, "..." expanding)
 * and a backslash escapes any character; without (JSON exec-form items), only `\$` is special.
 */
export function expandWord(word: string, vars: Record<string, string>, shell: boolean, line: number | null = null): string {
  let pos = 0;
  const fail = (message: string): never => {
    throw new TemplateSpecError(message, line);
  };
  const nameRe = /[A-Za-z_][A-Za-z0-9_]*/y;
  const readName = (): string => {
    nameRe.lastIndex = pos;
    const m = nameRe.exec(word);
    if (m === null) return "";
    pos += m[0].length;
    return m[0];
  };
  const lookup = (name: string): string | undefined => (Object.prototype.hasOwnProperty.call(vars, name) ? vars[name] : undefined);

  let depth = 0;
  const dollar = (): string => {
    pos++; // the $
    if (word[pos] !== "{") {
      const name = readName();
      return name === "" ? "$" : (lookup(name) ?? "");
    }
    const start = pos - 1;
    pos++;
    const name = readName();
    if (name === "") fail(`bad substitution in "${word}": a variable name must follow \${`);
    if (word[pos] === "}") {
      pos++;
      return lookup(name) ?? "";
    }
    let op = "";
    if (word[pos] === ":") {
      op = ":";
      pos++;
    }
    const modifier = word[pos];
    if (modifier !== "-" && modifier !== "+" && modifier !== "?") {
      fail(`unsupported substitution "${word.slice(start, pos + 1)}…": use $NAME, \${NAME}, \${NAME:-default} or \${NAME:+alternative}`);
    }
    pos++;
    if (++depth > 16) fail(`substitutions nested too deeply in "${word.slice(0, 60)}…"`);
    const alternative = until("}");
    depth--;
    const value = lookup(name);
    const isSet = op === ":" ? value !== undefined && value !== "" : value !== undefined;
    if (modifier === "-") return isSet ? (value as string) : alternative;
    if (modifier === "+") return isSet ? alternative : "";
    if (!isSet) fail(`${name} is not set${alternative === "" ? "" : `: ${alternative}`}`);
    return value as string;
  };

  const doubleQuoted = (): string => {
    let out = "";
    pos++; // the opening "
    while (pos < word.length) {
      const c = word[pos] as string;
      if (c === '"') {
        pos++;
        return out;
      }
      const next = word[pos + 1];
      if (c === "\\" && next !== undefined && '"$\\'.includes(next)) {
        out += next;
        pos += 2;
      } else if (c === "$") {
        out += dollar();
      } else {
        out += c;
        pos++;
      }
    }
    return fail(`unterminated double quote in ${word}`);
  };

  function until(stop: "}" | null): string {
    let out = "";
    while (pos < word.length) {
      const c = word[pos] as string;
      if (c === stop) {
        pos++;
        return out;
      }
      const next = word[pos + 1];
      if (c === "\\" && next !== undefined && (shell || next === "$")) {
        out += next;
        pos += 2;
      } else if (shell && c === "'") {
        const end = word.indexOf("'", pos + 1);
        if (end < 0) fail(`unterminated single quote in ${word}`);
        out += word.slice(pos + 1, end);
        pos = end + 1;
      } else if (shell && c === '"') {
        out += doubleQuoted();
      } else if (c === "$") {
        out += dollar();
      } else {
        out += c;
        pos++;
      }
    }
    if (stop !== null) fail(`missing "}" in ${word}`);
    return out;
  }

  return until(null);
}
