/**
 * The report's static text, keyed by scenario: what each row measures, and, shown wherever Stasis is slower
 * than its baseline in a run, why. The explanations come from measurements taken while building Stasis
 * (see the git history of docs/benchmarks.md); keep them honest when the code changes.
 */
export interface ScenarioNotes {
  title: string;
  /** What the rows measure and what the baseline is. */
  measures: string;
  /** Why Stasis is slower than the baseline where it is. */
  slower: string;
}

export const NOTES: Record<string, ScenarioNotes> = {
  create: {
    title: "Create to first command",
    measures:
      "`Sandbox.create()` until the reply (a sparse ext4 disk, formatted and loop-mounted ahead by the daemon's disk pool, `STASIS_DISK_POOL`, and moved into place; an overlay over the template; the OCI bundle, the runtime's start and the guest agent's hello), then `commands.run(\"echo hi\")`, against a raw cold `runsc run` / `crun run` of `/bin/echo hi` on the same template rootfs. Samples of the two alternate, each Stasis sample followed by 1.5 s of quiet (the daemon's disk pool refills in the background after a create) before the raw one. " +
      "**Warm pool**: a second private daemon with `STASIS_WARM_POOL=base=1` (the main one has no pool, so its creates stay cold); each sample waits until the pool holds a booted, frozen member again, then times create → first `echo hi`; beside it, the same by hand: a raw container started ahead and frozen through its cgroup, then thawed and `runsc exec echo hi`. " +
      "**Snapshot**: fork, `sandbox.fork(1)` of an idle running sandbox until the copy has answered its first `echo hi`, against a raw `runsc restore --detach` of an idle container's checkpoint followed by `runsc exec echo hi`.",
    slower:
      "A Stasis sandbox is more than a container: each create takes its own disk (a sparse ext4 image formatted and loop-mounted ahead by the disk pool, which the pool replaces in the background at low priority) and mounts an overlay over the template, gives the sandbox its network (a namespace, a veth pair and its firewall rules: the Network setup rows; the raw run has `--network=none`), writes a bundle with a seccomp profile and cgroup limits, waits for the guest agent's hello over its FIFO channel, and records the sandbox in SQLite; the raw run uses the read-only rootfs and keeps nothing. " +
      "With the disk made ahead, what remains on the create path is the overlay mount, the network, the bundle, the agent's start and hello, and the store; on gVisor the sandbox's own boot (runsc, its sentry and the agent as init, with the daemon's seccomp profile, cgroup limits and bind mounts) is most of the gap to the raw run (~1.4-1.6x on this shared host). crun starts in ~25-40 ms, so the same fixed costs make a Stasis crun sandbox about twice its raw run. " +
      "A create from the warm pool is a thaw of a frozen member, a row update and the HTTP round trip, then the first command after the thaw, which costs what any command after a pause costs (see below); by hand, a thaw and a raw `exec` cost about the same, so the two are close, and the pool only holds sandboxes of its exact shape (template, runtime, cpu, memory, disk): any other create boots cold. " +
      "Fork is slower than a cold create: it checkpoints the source, copies its disk (with the source's filesystem frozen), and restores both the source and the copy side by side, each under its own runsc container id; the raw baseline restores one image already on disk (see the fork target's note for the phases).",
  },
  templates: {
    title: "Templates: create from a snapshot, from a warm pool, in a burst",
    measures:
      "A template built by the bench through `POST /v1/templates/build` (a tar of its context): `from: base`, `COPY app.py` (a python3 `http.server` answering on port 8000), a `RUN` step, `start: python3 /app/app.py`, `ready: curl -sf http://127.0.0.1:8000/`; the build boots it, runs the start command until ready and checkpoints it (its snapshot). " +
      "**Builds** (one sample each): the first build (every step built, then the snapshot) and a rebuild with only the last step changed (FROM and COPY from the step cache; the changed step and a new snapshot built), each with its snapshot part. " +
      "**Snapshot**: `Sandbox.create({ template })` restores the snapshot (`createdVia: \"snapshot\"`), then `commands.run(\"curl -s localhost:8000\")` must print the server's answer: the server is already up. Beside each sample, in the same run, the raw cold `runsc run /bin/echo hi` of the create rows above, and a raw `runsc restore --detach` of a checkpoint of the same server in a plain container (same rootfs) followed by `runsc exec curl`; the create and its first command are also shown apart, against those two raw steps. " +
      "**Warm pool**: a second private daemon with `STASIS_WARM_POOL=<template>=2` keeps two members restored from the snapshot and frozen (a `pool: 2` in the template itself would be read by every daemon sharing the templates folder); each sample waits until both are ready again, then times create → first `echo hi`, beside a raw container started ahead and frozen, thawed + `runsc exec echo hi`. " +
      "**Burst**: N creates from the snapshot template fired at once (no pool): each create's reply time, the wall time until the last, and errors (a failed create, a server that does not answer `curl` afterwards, a failed delete), beside N raw cold `runsc run /bin/echo hi` at once and N raw `runsc restore --detach` of the same server's checkpoint at once (what the creates do by hand; wall time only). The template is deleted at the end.",
    slower:
      "A create from a snapshot is a `runsc restore` of the template's checkpoint, which pays runsc's fixed start (its runsc, gofer and sandbox processes, then the kernel state and memory read back: ~220-300 ms of the daemon's create on this host, about what the raw `runsc restore` of the same server costs, and the same order as a cold `runsc run`), plus ~30-45 ms of Stasis's own: a sparse copy of the snapshot's disk image (`cp --sparse=always`), its loop mount and the overlay, the bundle, the agent's first answer over the restored channel, and the store. " +
      "The first command is mostly curl's own start: curl loads 33 shared libraries, and inside gVisor it takes ~90-150 ms whether or not anything listens (the same `curl` to a closed port in a plain sandbox costs as much), while the server's answer itself takes a few ms; through the API the command also goes through `sh -c`, and the first command after a restore meets state that is still being restored lazily (a second `curl` in the same sandbox is ~40 ms faster). " +
      "Against the raw cold `runsc run /bin/echo hi`, the row compares a restore plus curl with a cold start plus echo: what the snapshot saves is the server's start and the readiness wait (python3 alone takes a few hundred ms to start inside gVisor), which the raw run never does. " +
      "From the warm pool, a create is a thaw of a frozen member, a row update and the HTTP round trip, then the first command after the thaw, as for the base template's pool above. " +
      "In a burst, the restores queue for a boot slot (`STASIS_CREATE_PARALLELISM`, 2 × cores) and for 2 cores of CPU (a restore is mostly runsc's CPU time), so a create's time is mostly its wait in that queue; the raw runs all start at once, and each is a bare `echo` with no disk of its own, no server in memory and no agent. Measured by hand on this host, a create from the snapshot costs ~290 ms of CPU, of which ~35 ms is the daemon's and the rest runsc's (its restore and the sentry): the burst is bound by the cores. The closest baseline is the raw restores of the same server at once, which also start all at once and return before anything inside has answered; a trial with `STASIS_CREATE_PARALLELISM=16` was not faster beyond this host's run-to-run noise (9.8-14.4 s for the 50 with the default 4 slots). " +
      "Builds have no baseline: each filesystem step runs in a throwaway gVisor sandbox over the layers below it, and the snapshot boots the new version, starts its server, waits for `ready` and checkpoints it; a rebuild takes the layers before the changed step from the cache but always takes a new snapshot.",
  },
  exec: {
    title: "Commands in a running sandbox",
    measures:
      "`echo hi` in a running sandbox through the HTTP API (plain `fetch` of `POST /v1/sandboxes/{id}/commands/run`) and through the SDK (`sandbox.commands.run`), 50 ms apart (an agent thinks between commands); then back to back, and as argv (`[\"/bin/echo\", \"hi\"]`, which always creates a process). The daemon runs a shell string as `sh -c`; the agent serves it with a warm spare shell when one is ready. " +
      "Baseline: `runsc exec` / `crun exec` of `/bin/echo hi` in a running raw container of the same rootfs, also 50 ms apart (and back to back for the back-to-back rows).",
    slower:
      "On gVisor the API beats raw `runsc exec` (which starts a runsc process, connects to the sandbox and creates a process in it). Where a row is slower: inside gVisor, creating a process costs 14-16 ms on this host with systrap; the warm spare shell removes that cost for spaced-out shell commands, but back-to-back commands find the next spare not yet started and argv commands never use it, so both pay a process creation each. " +
      "On crun a raw `crun exec` is cheap (it includes the ~3 ms unshare wrapper that crun needs on hybrid cgroups), and the API's own cost (HTTP, JSON, the per-sandbox lock, the agent's channel: ~2-3 ms) plus this VM's CPU wake-up latency after 50 ms idle (every spaced round trip pays it, raw or API) can put the two close; the ratio moves from run to run on a shared 2-core machine.",
  },
  python: {
    title: "A short Python program",
    measures:
      "`python3 -c 'print(sum(range(10**6)))'` (output checked): in a running sandbox through the SDK against raw `exec` in a running raw container; and end to end (create, run, delete) against one cold raw `run` of the same program.",
    slower:
      "In a running sandbox the interpreter's start and the loop dominate, and both sides pay them alike; on gVisor Stasis adds its own path (HTTP, the daemon, the agent's channel, and the shell that runs a command string and then starts python3 as a new process inside gVisor, ~15 ms each there), where raw `runsc exec` starts python3 directly. On crun the API is faster than raw `crun exec`, which pays the runtime's own start and the hybrid-cgroup wrapper. End to end, Stasis pays the create costs described above and a delete (stopping the runtime, unmounting and removing the sandbox's disk, removing its cgroup), while a raw `run` discards a read-only container.",
  },
  code: {
    title: "Code interpreter",
    measures:
      "The built-in `code-interpreter` template (examples/templates/code-interpreter, snapshotted with its server and a warm IPython kernel). **Warm run**: `sandbox.code.run(\"x + 1\")` in a Python context that already holds `x` (SDK → daemon → the interpreter's server on the sandbox's address → the kernel), against raw `runsc exec python3 -c 'x = 1; print(x + 1)'` in a running raw container: a kept kernel against starting Python per snippet. **First run**: `Sandbox.create({template: \"code-interpreter\"})` until `code.run(\"1 + 1\")` has answered, restored from the template's snapshot (main daemon, no pool) and claimed from a warm pool of 1 (a second private daemon with `STASIS_WARM_POOL=code-interpreter=1`; each sample waits for the member to be back).",
    slower:
      "A warm run is three hops: HTTP to the daemon (~1-3 ms with its lock and hold), a fresh TCP connection from the host into the sandbox through gVisor's own network stack and the interpreter's Python HTTP server (`/health` alone, host to sandbox on a new connection: ~8 ms on this loaded host, ~2 ms of it the connect), and the kernel round trip over pipes (IPython's `run_cell` of `x + 1` inside gVisor: ~1.5 ms, once its history moved to memory: on disk it was a SQLite write per run through gVisor's file system, ~4 ms). Inside the sandbox a whole `/execute` takes ~4-7 ms; the rest is the host's side. Raw `runsc exec python3 -c` is only ~75-85 ms here (Python starts fast from a warm page cache), so 10x asks for ~8 ms end to end, which the three hops do not fit on this shared 2-core host; the first version, ipykernel over ZeroMQ, took 20-30 ms in the kernel alone. A first run from the snapshot pays the restore of a ~105 MiB memory image (server, kernel, numpy, pandas and matplotlib loaded) and its page-ins; a pooled member has paid both (it answers the readiness check once, which runs a silent no-op in the kernel, before it is frozen).",
  },
  paused: {
    title: "Resume from paused",
    measures:
      "Sandboxes sleep as users leave them: each is paused (`sandbox.pause()` freezes its cgroup) for 1 s (`--quick`) or 3 s, then woken by its first command, which wakes it and runs: `echo hi` (a shell builtin, served by the agent's warm spare shell) or `cat /etc/hostname` (starts a process); or by `sandbox.resume()` alone. Each is measured for an idle sandbox and for one running a CPU-bound process (`python3 -c 'while True: pass'`, started in the background; it must still run at the end). After each wake the sandbox runs 200 ms before it is paused again (an agent thinks between commands; a sandbox that pauses on its own has been idle longer), so its spare shell is back. " +
      "Baselines, on a raw container of the same rootfs (idle, or running the same busy process) frozen through its own cgroup as long: thaw + `exec /bin/echo hi`, thaw + `exec cat /etc/hostname`, and the bare thaw (write `THAWED`, spin until it reads back). All sandboxes and containers sleep at once; each is then measured while every other one stays frozen.",
    slower:
      "The bare thaw is a cgroup write (0.2-0.4 ms): no API call can match it. The resume call adds HTTP, the per-sandbox lock, the store and a ping of the agent; the first command after a pause costs what any spaced-out command costs (see above). Against what a user would do by hand, thaw + raw `exec`, Stasis is faster on gVisor. " +
      "The gVisor target of < 5 ms for the first command after a pause is not reachable on this host: inside gVisor even the warm shell's exit and reap take ~7 ms, process creation ~15 ms, and an HTTP round trip after idle pays ~4 ms of CPU wake-up latency on this VM.",
  },
  hibernation: {
    title: "Hibernate and resume from hibernated (gVisor)",
    measures:
      "A sandbox whose Python process holds N MiB of random bytes (incompressible, every page touched). **hibernate**: `sandbox.hibernate()` until the reply (checkpoint, channel drained, disk synced); **image size**: the checkpoint folder; **resume**: `sandbox.resume()` after the sandbox slept a few seconds; **first command**: the same wake done by `commands.run(\"echo hi\")`; **fork**: `sandbox.fork(1)` of the running sandbox. " +
      "Baselines: the same Python holder in a plain `runsc run` container (same rootfs, a FIFO as stdout like the daemon's), checkpointed uncompressed (`--compression=none`, as Stasis does), then restored from that image with `runsc restore --detach` (+ `runsc exec echo hi`), and checkpointed again. The raw container is checkpointed only once the holder has printed \"ready\", as the sandbox is (results.json files written before this was so can hold raw images taken while Python still held a temporary copy of its bytes: up to ~1.6x the working set, which also slows their raw restores).",
    slower:
      "A wake is `runsc restore` plus up to ~50-100 ms of Stasis's own: mount checks, the OCI bundle, the agent's first answer over the restored pipes, deleting the image and recording the state; with a handful of samples per working set, the ratio moves by ±15% from run to run on this shared machine, and either side can come out ahead. " +
      "Hibernate adds, to the checkpoint, waiting for requests in flight, draining the old channel, `runsc delete` and `sync -f` of the sandbox's disk (files must survive a host crash). " +
      "Fork checkpoints the source, copies the sandbox's disk and restores the source as well as the copy, side by side on 2 cores; the raw baseline restores one copy only, from an image already on disk.",
  },
  files: {
    title: "Files through the API",
    measures:
      "`sandbox.files.write(path, bytes)` and `sandbox.files.read(path)` of random bytes (reads checked for size), as MiB/s, against a host `cp` of a file of the same size on the same disk (page cache included, as it is for the sandbox).",
    slower:
      "A host `cp` moves bytes within the page cache. Through the API every byte crosses HTTP to the daemon, then the agent's channel, where file bytes travel as binary frames of up to 1 MiB over a pipe (eight in flight), then gVisor's gofer onto the sandbox's overlay disk; reads come back the same way. The file API goes through the guest agent by design (gVisor caches the root filesystem, so the host must not write behind its back), so the client, the daemon and the sandbox each spend CPU on every byte, on the same 2 cores (the files target's note has the split).",
  },
  network: {
    title: "Network",
    measures:
      "Against the bench's own test internet (a network namespace serving HTTP under two names, reached through the daemon's DNS; never the real internet): from a sandbox, a new TCP connection + an HTTP request + the first byte of the reply (`time.perf_counter` in Python, inside the sandbox), and the download of 100 MiB (50 in quick mode) over one connection, once directly (default policy: NAT) and once through the egress proxy (an allow list by name sends TCP 80 through it). The baseline is the same script on the host, in the same run, alternating with the sandbox's.",
    slower:
      "The sandbox's packets cross a veth and the host's NAT; gVisor's also cross its user-space network stack (netstack, one AF_PACKET socket), which costs CPU per packet. Through the proxy every byte is copied through the daemon (a Node.js splice) on top of that.",
  },
  "network-setup": {
    title: "Network setup",
    measures:
      "What networking adds to a gVisor sandbox's create, wake from disk and fork: the time the daemon spent giving the sandbox its network before starting its runtime (a fresh namespace and veth by two `ip -batch` runs, beside them its rules by one `nft` transaction, which changes queued meanwhile share), read from the daemon's `stasis_network_attach_seconds` before and after each operation (per network set up: a fork makes the clone's while the disk is copied; its source keeps its own namespace and rules through the checkpoint and only gets its address back on `eth0`, one `ip -batch` run that this figure does not count). A wake is timed twice: a second after its hibernation, when the namespace and rules were kept and only the address goes back (`how=\"kept\"`), and after the daemon let them go (`STASIS_HIBERNATED_NETWORK_KEEP_MS`, 10 min by default, 2 s for this bench), when they are made anew (`how=\"made\"`).",
    slower: "",
  },
  preview: {
    title: "Preview URLs",
    measures:
      "A gVisor sandbox running a small Node.js server on port 8000: requests through its preview route (`8000-<id>.localhost` on the daemon, with its token) beside the same requests sent straight from the host to the sandbox's address, alternating: GET latency over one kept-alive connection, a 100 MiB download (50 in quick mode), 200 keep-alive clients at once (requests per second, errors), and a request on a new connection to a paused sandbox and to a hibernated one (each woken by the request) beside the same request to it running. Then a fresh sandbox with the same server, hibernated and woken by a request through its route, against the raw floor: the same server in a plain runsc container with its own network namespace (as the daemon runs it), checkpointed once, each round `runsc restore` plus the request straight to it (the fresh namespace runsc needs is made before the clock starts).",
    slower:
      "Through the route every request crosses the daemon (Node.js): parsed, checked, and sent on (a request without a body over a kept-alive connection into the sandbox, one with a body over a new one), then streamed back; the direct request only crosses the veth. A wake from disk also gives the sandbox its address back in the namespace it kept (~3-5 ms; its namespace and rules made anew, ~10-13 ms, when it slept past `STASIS_HIBERNATED_NETWORK_KEEP_MS`), restores the agent and the sandbox's disk mounts besides the server, and waits for the agent's answer before the request goes in. The like-for-like pair (a fresh sandbox's idle server against raw runsc) runs once the load-bearing sandbox is gone: on Debian's runsc (20240729) a server woken after serving the 200 clients through the route was seen spinning about 75% of a core in its event loop (with only its listening socket open; never without a restore, never with direct clients), which slowed both sides of the pair by ~100 ms.",
  },
  concurrency: {
    title: "Concurrency",
    measures:
      "N clients at once, each creating a gVisor sandbox (SDK), running `echo hi` and deleting it: throughput (completed clients per second of wall time), per-client latency, and errors (must be zero). Meanwhile a separate thread polls `GET /healthz` every ~100 ms (target: median < 50 ms). Baseline: N raw `runsc run /bin/echo hi` at once (a cold container that runs the command and is deleted).",
    slower:
      "On 2 cores everything queues for CPU: a gVisor create is mostly runsc's and the sentry's CPU time, so throughput is bounded by the cores, not the daemon. Creates also queue for a boot slot (`STASIS_CREATE_PARALLELISM`, 2 × cores by default), which keeps each boot within its agent-ready timeout under a burst; the raw runs have no such limit and simply all start at once. Stasis does more per client than a raw run (its own disk and overlay, the agent handshake, the command round trip, and a delete that unmounts and removes the disk), so its throughput is lower than raw runs' at every level.",
  },
  density: {
    title: "Density",
    measures:
      "N idle sandboxes (one command run in each), measured running, then paused, then hibernated (gVisor): the host's MemAvailable before and after divided by N, the sandboxes' memory cgroups, and their CPU over an idle window. The machine is shared, so it is not filled to memory pressure: capacity is **projected** as MemAvailable / host MiB per sandbox (and, running, cores / idle CPU per sandbox), an upper bound. MemAvailable moves with other tenants; the cgroup figures do not. " +
      "An idle running gVisor sandbox is not free in CPU: on the systrap platform its stub threads poll, a few percent of a core each, so running idle sandboxes are bounded by CPU long before memory; paused ones (automatic after 15 s idle) use no CPU, and hibernated ones no memory either.",
    slower: "",
  },
};

/** Why a target the project set itself is not met, shown under the targets table when it is not. */
export const TARGET_NOTES: Record<string, string> = {
  "echo-5x":
    "The floor is inside gVisor: creating a process there costs 14-16 ms on this host with systrap (Python's `posix_spawn` of `/bin/true` measured in a sandbox: ~15 ms; ~9 ms with `--platform=ptrace`), about 40% of a whole raw `runsc exec`. The agent's warm spare shell removes that cost for spaced-out shell commands; what remains is the sandbox's wake from idle plus ~2-3 ms of HTTP, SDK and daemon. Reaching 5x needs a cheaper process creation in gVisor (a newer runsc, or the KVM platform on hosts that have it) or more than one spare shell.",
  "agent-rss-gvisor":
    "It is the same static binary that idles at ~3 MiB under crun (a real kernel). gVisor's own `/proc/1/smaps` counts ~7.4 MiB of the agent's anonymous Go heap as resident, because the sentry backs anonymous memory in larger chunks than Linux. The host cost of a whole idle gVisor sandbox (sentry, gofer and guest) is its cgroup figure, ~16 MiB.",
  "agent-rss-crun": "The agent is a static Go binary with only the standard library; on a real kernel it idles at ~3 MiB.",
  "paused-5ms":
    "The wake itself is a freezer thaw (~0.3 ms); the first command after it costs what any spaced-out command costs. Inside gVisor even the warm shell's exit and reap take ~7 ms and a process creation ~15 ms, and on this VM an HTTP round trip after idle pays ~4 ms of CPU wake-up latency. Under crun the same first command takes ~5 ms. 5 ms on gVisor needs commands that neither create nor reap a process, or a cheaper gVisor platform.",
  "hibernation-1.2x":
    "A wake is `runsc restore` plus Stasis's own ~50-100 ms (mount checks, the OCI bundle, the agent's first answer over the restored pipes, deleting the image, the store); the ratio moves with the machine's noise from run to run.",
  "template-snapshot-250ms":
    "The restore alone is about the target on this host: a raw `runsc restore` of the same server costs ~250-330 ms, as does the daemon's restore inside a create. Stasis adds ~30-45 ms (the snapshot's disk copy, the mounts, the agent's first answer, the store), and the first command, `curl`, costs ~100-170 ms by itself inside gVisor (it loads 33 shared libraries; the same curl to a closed port in a plain sandbox costs as much). A warm pool of the template takes the restore off the create path (next target); a lighter first probe of the server (the shell's `/dev/tcp`: ~10-20 ms) takes off most of the command; a faster restore needs a faster `runsc restore` (a newer runsc, or the KVM platform).",
  "template-pool-30ms":
    "A create from the pool is a thaw (~0.3 ms) plus the API's round trip; the first `echo hi` after the thaw costs what any command after a pause costs inside gVisor (see the paused rows). On this shared 2-core VM that median moves between ~25 and ~40 ms from run to run, the base template's warm pool (under Create to first command) alike.",
  "network-throughput-50pct":
    "Against a test internet on the same host, the host's own download is a memory copy across one veth (~1.8-2.7 GiB/s here), so the ratio is a CPU ratio. crun's packets take the same kernel path and keep up; gVisor's cross its user-space network stack, which spends CPU per packet: ~550 MiB/s on this 2-core machine, with GRO on or off (`--gvisor-gro`, and the kernel's GRO on the sandbox's end of the veth: measured, no change) and with 1 or 2 CPUs for the sandbox (no change beyond noise). That is several times a real internet link, but under half of the veth copy: the floor here is netstack's CPU, not the daemon.",
  "network-setup-fork":
    "This figure is how long the clone's namespace takes to make, not what it adds: a fork makes it while the source's disk is copied (~70-110 ms: `fsfreeze`, `cp`, the clone's mounts), so it adds nothing to the fork's critical path (the daemon's `sandbox forked` log line: `networkMs` 0, the time the restores waited for networks after the copy), and sharing 2 cores with the copy it takes ~12-16 ms where a create's takes ~10-13. The source keeps its namespace and rules through the fork (its address back on `eth0` in one `ip -batch` run). Before both, the source's and the clone's namespaces were made side by side after the copy: ~15-17 ms each, on the critical path.",
  "network-first-byte":
    "From a gVisor sandbox the connection's handshake, its request and the reply's first byte each also cross gVisor's user-space network stack (netstack in the sentry, reading the veth through one AF_PACKET socket): +0.9 to +1.1 ms over the host's own connection across runs here. crun, the same veth and NAT without netstack, adds nothing measurable; nothing of the daemon is on this path.",
  "preview-hibernated-1.2x":
    "By the wake's logged phases: the daemon's restore until the agent answers (~250 ms, about what the raw `runsc restore` plus the request costs), the sandbox's address back in its kept namespace (~3-5 ms; ~10-13 ms for a namespace and rules made anew, which the raw run makes before its clock starts), the bundle and the runtime's start (~5 ms), then the first request into the restored server, which costs 20-80 ms where the next costs ~4 ms (also after an explicit resume, so not the route). One CPU or two for the sandbox made no difference.",
  "preview-1ms":
    "A request without a body goes into the sandbox on a kept-alive connection, so what the route adds is the daemon's HTTP handling on the same 2 cores as the client and the sandbox: the request's parsing, the access check, the pooled connection's write and read, the reply's head and body written back. Across runs here +0.7 to +1.0 ms.",
  "preview-throughput-70pct":
    "Every byte crosses the daemon on top of gVisor's network stack, on 2 cores shared by the client, the daemon and the sandbox. The daemon reads each connection into the sandbox into one reused buffer and writes views of it (its own HTTP/1.1 client, `http/upstream/`): ~60-120 ms of its CPU per 100 MiB, where Node's HTTP client, a new buffer per read and a garbage collection every ~16 MiB, took 250-390 ms and half the direct rate.",
  "files-300mibs":
    "The floor is CPU: a 100 MiB transfer costs ~1.3-1.5 s of CPU in all when it was measured per process (from /proc and the sandbox's cgroup, with perf and strace), split over the client (SDK/undici), the daemon (the HTTP body, 1 MiB frames and their crc, the pipe writes) and the sandbox (mostly the sentry's context switches and its host-FD reads of the channel's FIFOs); crun is no faster, and writing to /tmp costs as much as to the overlay, so neither the gofer nor the disk is the cost. 1 MiB pipe buffers on the channel and reused upload buffers since then brought a quiet 2-core host to ~150-170 MiB/s each way, the client, the daemon and the sandbox sharing the two cores.",
  "fork-1.5x":
    "A fork checkpoints the source (its memory image written uncompressed), copies its disk while frozen, then restores the source and the copy side by side from the one image, each under its own runsc container id (no wait for a runsc delete any more: 6.0x before). It was 2.13x before the source kept its network through the fork and the clone's network was made during the copy. By the daemon's `sandbox forked` log line, for an idle sandbox: the checkpoint ~90-125 ms (a raw `runsc checkpoint` of an idle `sleep` container: ~40 ms), the copy ~70-110 ms (`fsfreeze`, which flushes the disk: ~45 ms; `cp` of the sparse image ~5 ms; the clone's loop and overlay mounts), then the two restores side by side ~260-320 ms. The raw baseline restores an image already on disk, so the checkpoint and the copy (~180-230 ms together) are on Stasis's side alone, and on a 2-core host the source's restore shares the cores with the clone's.",
  "create-gvisor":
    "Disks come formatted and mounted from the daemon's pool (STASIS_DISK_POOL); what Stasis adds to a raw `runsc run` (which has no network) is the overlay mount, the sandbox's network (a namespace, a veth pair and its rules, ~10-16 ms: the Network setup rows), the OCI bundle, the agent's start and first answer and the warm shell it prepares, and the HTTP round trips of create and exec. By the daemon's `sandbox booted` log lines, the runtime's start until the agent's hello is itself ~160-250 ms here, about a whole raw run. Run against each other in alternation the ratio moves between 1.33x and 1.76x on this shared host.",
  "create-crun":
    "As for gVisor: the overlay mount, the network (~10-16 ms), the bundle, the agent's start and hello, and two HTTP round trips; against a raw `crun run` of ~25-40 ms each of these milliseconds weighs: paired runs measured 1.80x to 2.32x.",
  "template-burst-errors": "The errors are printed in the progress output of the run, each with how often it occurred; the daemon's own error lines are under What went wrong.",
  "concurrency-errors": "See the errors listed under Concurrency, exactly as the clients saw them.",
  healthz: "A /healthz answer waits for the daemon's event loop; see the latencies per level under Concurrency.",
  "wall-time": "The machine was slower or busier than usual during this run (it is shared); the sections' own times are in the progress output.",
};
