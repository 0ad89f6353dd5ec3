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

/** Every Debian root Stasis makes (the built-in base and `FROM debian:<release>`) gets these. */
export const DEBIAN_CUSTOMIZE = [
  'chroot "$1" useradd --create-home --shell /bin/bash --uid 1000 user',
  // Files the sandbox needs but the host must not leak into it: mmdebstrap copies the build host's
  // /etc/hostname; sandboxes are named "sandbox" (their UTS hostname too).
  'printf "127.0.0.1 localhost sandbox\\n::1 localhost\\n" > "$1/etc/hosts"',
  'printf "sandbox\\n" > "$1/etc/hostname"',
  'rm -rf "$1/var/cache/apt/archives"/*.deb "$1/var/lib/apt/lists"/*',
  'mkdir -p "$1/.stasis" && touch "$1/.stasis/agent"',
];

export const builtinRecipes: Record<string, TemplateRecipe> = {
  base: {
    name: "base",
    suite: "bookworm",
    variant: "minbase",
    // pip, venv and npm: what an agent's first command after running code usually is.
    packages: ["python3", "python3-pip", "python3-venv", "nodejs", "npm", "git", "curl", "procps", "ca-certificates", "sudo"],
    mirror: "http://deb.debian.org/debian",
    customize: [
      ...DEBIAN_CUSTOMIZE,
      // As in E2B's base: `user` may run anything as root without a password.
      'printf "user ALL=(ALL:ALL) NOPASSWD: ALL\\n" > "$1/etc/sudoers.d/user" && chmod 0440 "$1/etc/sudoers.d/user"',
      // A sandbox is a throwaway machine: `pip install x` works without a venv, as on E2B's base.
      'printf "[global]\\nbreak-system-packages = true\\n" > "$1/etc/pip.conf"',
    ],
  },
};
