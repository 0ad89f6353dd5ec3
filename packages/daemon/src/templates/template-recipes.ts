/** How each built-in template is made. Changing a recipe changes its hash, which triggers a rebuild. */
export interface TemplateRecipe {
  name: string;
  suite: string;
  variant: string;
  packages: string[];
  mirror: string;
  /** Shell commands run with the new root as $1 after packages are installed (mmdebstrap customize hooks). */
  customize: string[];
}

export const builtinRecipes: Record<string, TemplateRecipe> = {
  base: {
    name: "base",
    suite: "bookworm",
    variant: "minbase",
    packages: ["python3", "nodejs", "git", "curl", "procps", "ca-certificates"],
    mirror: "http://deb.debian.org/debian",
    customize: [
      'chroot "$1" useradd --create-home --shell /bin/bash --uid 1000 user',
      // Files the sandbox needs but the host must not leak into it.
      'printf "127.0.0.1 localhost sandbox\\n::1 localhost\\n" > "$1/etc/hosts"',
      'rm -rf "$1/var/cache/apt/archives"/*.deb "$1/var/lib/apt/lists"/*',
      'mkdir -p "$1/.stasis" && touch "$1/.stasis/agent"',
    ],
  },
};
