import {
  afterDoubleDash,
  command,
  flag,
  negatedFlag,
  type OptionsOf,
  operand,
  operands,
  parseChoice,
  parseCount,
  parseSeconds,
  parseSecondsOrZero,
  requiredChoice,
  requiredOperand,
  requiredValue,
  value,
  values,
} from "../spec.js";

/**
 * Every command's arguments and flags, and the options type its run function receives (derived here, so a
 * renamed flag breaks the build where it is used). A nested command's name is its path: "images pull".
 * A new command is a spec here, a loader in `program.ts` and its module in this folder.
 */

export const init = command({
  name: "init",
  description: "write a starter castra.toml and .castra/",
  options: {
    force: flag("--force", "overwrite an existing castra.toml"),
    projectName: value("--project-name <name>", "project name (default: the directory name)"),
    output: value(
      "-o, --output <path>",
      "a directory for castra.toml, or a file path ending in .toml (default: .)",
    ),
  },
});
export type InitOptions = OptionsOf<typeof init>;

export const ports = command({
  name: "ports",
  description: "show declared port forwards and conflicts",
  options: {
    verbose: flag("--verbose", "also show the project, its config file and the broker reservation"),
  },
});
export type PortsOptions = OptionsOf<typeof ports>;

export const up = command({
  name: "up",
  description: "start the project's VMs (or those named) and wait until each is ready",
  args: { vms: operands("[vms...]", "the VMs to act on (default: every VM of the project)") },
  options: {
    wait: negatedFlag("--no-wait", "return once QEMU runs, without waiting for the guests to be ready"),
    timeout: value(
      "--timeout <seconds>",
      "how long to wait for the guests to be ready (default: 300)",
      parseSeconds,
    ),
    accel: value(
      "--accel <mode>",
      "kvm, tcg or auto (default: $CASTRA_ACCEL, else auto: KVM when usable)",
      parseChoice(["auto", "kvm", "tcg"]),
    ),
    force: flag("--force", "start even when the CPU, memory, disk or port checks fail (as warnings)"),
    offline: flag("--offline", "never download: use only managed images already cached"),
    discardSuspended: flag(
      "--discard-suspended",
      "boot suspended VMs from their disks, throwing their saved memory away",
    ),
  },
});
export type UpOptions = OptionsOf<typeof up>;

export const down = command({
  name: "down",
  description:
    "power off the VMs (ACPI, then SIGTERM, then SIGKILL); a suspended VM's saved state is discarded",
  args: { vms: operands("[vms...]", "the VMs to act on (default: every VM of the project)") },
  options: {
    timeout: value(
      "--timeout <seconds>",
      "how long a guest gets to power off before SIGTERM (default: 60; 0: SIGTERM at once)",
      parseSecondsOrZero,
    ),
    force: flag("--force", "no ACPI power-down: SIGTERM at once, then SIGKILL"),
  },
});
export type DownOptions = OptionsOf<typeof down>;

export const status = command({
  name: "status",
  description: "show each VM's state, resources, uptime, broker and forwards",
  args: { vms: operands("[vms...]", "the VMs to act on (default: every VM of the project)") },
  options: { json: flag("--json", "print a JSON document instead of the table") },
});
export type StatusOptions = OptionsOf<typeof status>;

export const logs = command({
  name: "logs",
  description: "show the broker, image-manager, QEMU and serial logs, merged by time",
  args: { vms: operands("[vms...]", "the VMs to act on (default: every VM of the project)") },
  options: {
    tail: value(
      "-n, --tail <lines>",
      "lines to show from the end of the merged logs (default: 1000)",
      parseCount,
    ),
    follow: flag("-f, --follow", "keep streaming new lines until Ctrl-C"),
  },
});
export type LogsOptions = OptionsOf<typeof logs>;

export const ssh = command({
  name: "ssh",
  description: "log into a running VM with the project's SSH key, or run COMMAND there",
  // Everything after the VM's name belongs to the remote command, its flags included.
  flagsBeforeOperands: true,
  args: {
    vm: operand("[vm]", "the VM (default: the project's only VM; then put COMMAND after --)"),
    command: operands("[command...]", "a command to run instead of a login shell: every word after the VM"),
  },
  options: {
    sshOption: values(
      "-o, --ssh-option <option>",
      "an ssh_config option for ssh itself, e.g. 'LocalForward 8080 localhost:80' (repeatable)",
    ),
    commandOnly: afterDoubleDash(),
  },
  examples: [
    "castra ssh",
    "castra ssh devbox uname -a",
    "castra ssh -- uname -a   (a project with one VM)",
    "castra ssh -o 'LocalForward 8080 localhost:80' devbox",
  ],
});
export type SshOptions = OptionsOf<typeof ssh>;

export const sshConfig = command({
  name: "ssh-config",
  description: "print an OpenSSH Host block for each running VM, for scp, rsync and editors",
  args: { vm: operand("[vm]", "only this VM (default: every running VM with SSH)") },
  examples: ["castra ssh-config > ~/.ssh/castra.conf   (then: Include castra.conf in ~/.ssh/config)"],
});
export type SshConfigOptions = OptionsOf<typeof sshConfig>;

export const list = command({
  name: "list",
  description: "show every castra VM of yours across projects: project, directory, state, SSH port",
  options: { json: flag("--json", "print a JSON document instead of the table") },
});
export type ListOptions = OptionsOf<typeof list>;
export const provision = command({
  name: "provision",
  description: "on running VMs, mount what is not mounted and run every provisioning step again",
  args: { vms: operands("[vms...]", "the VMs to act on (default: every running VM of the project)") },
});
export type ProvisionOptions = OptionsOf<typeof provision>;

export const suspend = command({
  name: "suspend",
  description: "save running VMs' memory and devices next to their overlays and stop them; `up` resumes them",
  args: { vms: operands("[vms...]", "the VMs to act on (default: every VM of the project)") },
});
export type SuspendOptions = OptionsOf<typeof suspend>;

export const destroy = command({
  name: "destroy",
  description:
    "stop VMs and delete their overlays, saved states and snapshots: the next `up` boots them fresh",
  args: { vms: operands("[vms...]", "the VMs to act on (default: every VM of the project)") },
  options: { yes: flag("-y, --yes", "destroy without asking") },
});
export type DestroyOptions = OptionsOf<typeof destroy>;

const vmOption = { vm: value("--vm <vm>", "the VM (default: the project's only VM)") };
const snapshotName = {
  name: requiredOperand("<snapshot>", "the snapshot's name: letters, digits, `.`, `_`, `-`"),
};

/** Named snapshots of a VM: disk and, while it runs, memory (qcow2 internal snapshots). */
export const snapshot = command({
  name: "snapshot",
  description: "save, restore, list or delete named snapshots of a VM",
});

export const snapshotSave = command({
  name: "snapshot save",
  description: "snapshot the VM: its disk, and its memory while it runs",
  args: snapshotName,
  options: vmOption,
});

export const snapshotRestore = command({
  name: "snapshot restore",
  description: "return a running VM to the snapshot's moment, or rewind a stopped VM's disk",
  args: snapshotName,
  options: vmOption,
});

export const snapshotList = command({
  name: "snapshot list",
  description: "show the VM's snapshots: name, date, whether it holds memory, size",
  options: vmOption,
});

export const snapshotDelete = command({
  name: "snapshot delete",
  description: "delete a snapshot",
  args: snapshotName,
  options: vmOption,
});
export type SnapshotOptions = OptionsOf<typeof snapshotSave>;
export type SnapshotListOptions = OptionsOf<typeof snapshotList>;

/** `castra images` alone lists the cache; its subcommands fill, check and trim it. */
export const images = command({
  name: "images",
  description: "pull, list, verify or prune the managed images cached in .castra/images",
});

export const imagesPull = command({
  name: "images pull",
  description: "download and prepare a managed image without booting (default: the ones the project uses)",
  args: { image: operand("[image]", "ID@VERSION, e.g. alpine-minimal@v1") },
  options: { offline: flag("--offline", "never download: succeed only when the image is already cached") },
});
export type PullOptions = OptionsOf<typeof imagesPull>;

export const imagesList = command({
  name: "images list",
  description: "show cached images with their files, sizes and dates",
  options: {
    cache: flag("--cache", "show the per-user download cache instead: blobs, sizes, last use, URL"),
  },
});

export const imagesVerify = command({
  name: "images verify",
  description: "re-hash every cached file against its manifest (exit 65 on a mismatch)",
  options: {
    cache: flag("--cache", "re-hash the per-user download cache instead (exit 65 naming each damaged blob)"),
  },
});

export const imagesPrune = command({
  name: "images prune",
  description: "remove cached images that no VM of this project uses",
  options: {
    yes: flag("-y, --yes", "remove without asking"),
    cache: flag("--cache", "prune the per-user download cache instead: blobs no catalog entry uses"),
    olderThan: value(
      "--older-than <days>",
      "with --cache, also blobs unused for more than DAYS days",
      parseCount,
    ),
  },
});
export type PruneOptions = OptionsOf<typeof imagesPrune>;
/** `--cache` of list and verify: the per-user download cache instead of the project's images. */
export type CacheOptions = OptionsOf<typeof imagesList> & OptionsOf<typeof imagesVerify>;

export const doctor = command({
  name: "doctor",
  description: "check this host for what castra needs: Node, QEMU, KVM, ssh, disk space, cache, proxies",
  options: { json: flag("--json", "print a JSON document instead of the lines") },
});
export type DoctorOptions = OptionsOf<typeof doctor>;

/** The shells `castra completion` writes a script for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

export const completion = command({
  name: "completion",
  description: "print the shell completion script for bash, zsh or fish",
  args: { shell: requiredChoice("<shell>", "bash, zsh or fish", SHELLS) },
  examples: [
    "source <(castra completion bash)                  (add the line to ~/.bashrc to keep it)",
    "castra completion zsh > ~/.zfunc/_castra          (with fpath+=(~/.zfunc) before compinit)",
    "castra completion fish > ~/.config/fish/completions/castra.fish",
  ],
});
export type CompletionOptions = OptionsOf<typeof completion>;

/** The completion scripts run this at every Tab: candidates for the last word. Hidden; never fails. */
export const complete = command({
  name: "__complete",
  description: "print completion candidates for the words of a castra command line",
  hidden: true,
  // The line being completed is data: its flags are not this command's.
  flagsBeforeOperands: true,
  args: {
    shell: requiredChoice("<shell>", "bash, zsh or fish: how to format the answer", SHELLS),
    words: operands(
      "[words...]",
      "after --: the words after `castra`, the last being the one under the cursor",
    ),
  },
});
export type CompleteOptions = OptionsOf<typeof complete>;

/** Started detached by `castra up` when castra.toml has a [broker] table; not for people. */
export const broker = command({
  name: "broker",
  description: "run the host broker in the foreground",
  hidden: true,
  options: {
    projectDir: requiredValue(
      "--project-dir <dir>",
      "the project directory (its .castra/ holds the broker's socket and state)",
      String,
    ),
  },
});
export type BrokerOptions = OptionsOf<typeof broker>;

/** Started detached by `castra up`, once per VM that serves instance metadata; not for people. */
export const metadata = command({
  name: "__metadata-server",
  description: "serve one VM's instance metadata on its unix socket",
  hidden: true,
  args: { config: requiredOperand("<config>", "the metadata server configuration") },
});

/** In the order `castra --help` lists them. */
export const COMMANDS = {
  init,
  ports,
  up,
  down,
  status,
  list,
  logs,
  ssh,
  sshConfig,
  provision,
  suspend,
  destroy,
  snapshot,
  snapshotSave,
  snapshotRestore,
  snapshotList,
  snapshotDelete,
  images,
  imagesPull,
  imagesList,
  imagesVerify,
  imagesPrune,
  doctor,
  completion,
  broker,
  metadata,
  complete,
};
export type CommandId = keyof typeof COMMANDS;
