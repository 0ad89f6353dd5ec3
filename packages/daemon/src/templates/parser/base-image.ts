// What FROM or `from` may name: a Debian release or a template.
import { TemplateRefSchema } from "@stasis/protocol";
import { TemplateSpecError, type BaseImage } from "../template-definition.js";

const DEBIAN_SUITES: Record<string, string> = { bookworm: "bookworm", "12": "bookworm", trixie: "trixie", "13": "trixie" };
const DEBIAN_HINT = "debian:bookworm (12) or debian:trixie (13)";
export const EXAMPLE_FROM = "debian:bookworm";

/**
 * Maps what FROM or `from` names to a base: `debian`, `debian:<suite|number>[-slim]`, `bookworm`, `trixie`
 * → a Debian release; `template:<ref>` or any template ref (`name`, `name:version`) → that template.
 */
export function parseBaseImage(value: string, line: number | null = null): BaseImage {
  const image = value.trim();
  if (image === "") throw new TemplateSpecError(`the base is empty: name one, e.g. ${DEBIAN_HINT} or a template such as base`, line);
  if (image.startsWith("template:")) {
    const ref = image.slice("template:".length);
    if (!TemplateRefSchema.safeParse(ref).success) {
      throw new TemplateSpecError(`"${image}" does not name a template: use template:<name> or template:<name>:<version>, e.g. template:myapp:3`, line);
    }
    return { kind: "template", ref };
  }
  let tag: string | null = null;
  if (image === "debian") tag = "bookworm";
  else if (image.startsWith("debian:")) tag = image.slice("debian:".length);
  else if (/^(bookworm|trixie)(-slim)?$/.test(image)) tag = image;
  if (tag !== null) {
    const release = tag.replace(/-slim$/, "");
    const major = /^(\d+)(?:\.\d+)*$/.exec(release)?.[1];
    const suite = DEBIAN_SUITES[major ?? release];
    if (suite === undefined) throw new TemplateSpecError(`Debian "${tag}" is not supported: use ${DEBIAN_HINT}`, line);
    return { kind: "debian", suite };
  }
  if (image === "scratch") {
    throw new TemplateSpecError(
      `"scratch" is not supported: a template needs a root filesystem. Start from a Debian base (${DEBIAN_HINT}), or build the image with Docker, \`docker save\` it and load the tarball with \`stasis template import\``,
      line,
    );
  }
  if (TemplateRefSchema.safeParse(image).success) return { kind: "template", ref: image };
  throw new TemplateSpecError(
    `"${image}" is neither a Debian base nor a template, and images can't be pulled: the daemon does not reach registries. ` +
      `Start from a Debian base (${DEBIAN_HINT}) and install what you need with packages or RUN steps, ` +
      `or import the image: \`docker save ${image} -o image.tar\`, then \`stasis template import\` the tarball`,
    line,
  );
}

/** How a base is written back, e.g. in a template's `from`. */
export function formatBaseImage(base: BaseImage): string {
  return base.kind === "debian" ? `debian:${base.suite}` : base.ref;
}
