import { DEFAULT_MANAGED_IMAGE, DEFAULT_VM_NAME } from "./model.js";
import { CONFIG_VERSION } from "./schema.js";

/**
 * The commented castra.toml that `castra init` writes. Its VM is the one the synthesized default project
 * runs (same name, image and overlay), so a project that started without a config keeps its VM.
 */
export function starterConfig(projectName: string): string {
  const vm = DEFAULT_VM_NAME;
  const image = DEFAULT_MANAGED_IMAGE;
  return `# castra.toml: the VMs of this project (\`castra up\` boots them, \`castra down\` stops them).
# Relative paths are relative to the directory of this file.

# Format version of this file.
version = "${CONFIG_VERSION}"

[project]
# Shown by \`castra status\`; any short name.
name = ${JSON.stringify(projectName)}

[[vms]]
# Names the VM in every command and its files in .castra/ (lowercase letters, digits, "-", "_").
name = "${vm}"
# A catalog image that castra downloads, verifies and caches (add profile = false to skip its QEMU hints).
managed_image = { name = "${image.name}", version = "${image.version}" }
# Or bring your own qcow2 image instead (never downloaded; set exactly one of the two):
# base_image = "images/devbox.qcow2"
# Copy-on-write disk holding this VM's changes; the base image itself is never written.
overlay = ".castra/${vm}-overlay.qcow2"
# Virtual CPUs; leave out to use the image's default.
# cpus = 2
# Memory with a unit ("512M", "2 GiB"); leave out to use the image's default.
# memory = "1024 MiB"
# A serial-console line that means the guest is ready; the catalog image knows its own.
# ready_pattern = "login:"

# Guest access. \`castra ssh\` logs in with the project key (.castra/ssh/id_ed25519), which castra hands
# to the guest through its own instance-metadata service at 169.254.169.254 (the host's is never reachable).
# More public keys for the guest: key lines or .pub files.
# authorized_keys = ["~/.ssh/id_ed25519.pub"]
# A file served byte for byte as the guest's user-data (Alpine's tiny-cloud runs it if it is a script).
# user_data = "user-data.sh"
# "ec2" or "none"; the catalog image knows which it reads (your own images get "none" unless set).
# metadata = "ec2"
# The user \`castra ssh\` logs in as; the catalog image knows its own (your own images: root).
# ssh_user = "alpine"
# castra forwards a free 127.0.0.1 port to guest port 22 (or uses a forward you declare to port 22);
# false turns that off.
# ssh = false
# Another network for this guest; outside 169.254.0.0/16 the host's own metadata service becomes reachable.
# subnet = "10.0.2.0/24"

# A host directory the guest sees (catalog images get this one without the table); repeat the table for
# more, or write mounts = [] to share nothing.
[[vms.mounts]]
# The directory on the host: "." is this project.
host = "."
# Where it appears in the guest.
guest = "/project"
# true lets the guest change your files, castra.toml included: read README's "Mounts and provisioning" first.
writable = false

# Set-up run in the guest as root over SSH once it is ready and its mounts are up, in order: a shell command
# (run) or a script of this project copied in (script). A "once" step (the default) runs again only when it
# changes, an "always" step on every boot; \`castra provision\` runs them all again.
# [[vms.provision]]
# A shell command for the guest's shell; or script = "scripts/setup.sh", a file of this project.
# run = "apk add --no-cache git make"
# "once" or "always".
# when = "once"

# Forward a host port to a guest port (say a web server); repeat the table for more. SSH needs none:
# castra picks a free port for it (the same one each time while it stays free), so projects never collide.
# [[vms.port_forwards]]
# Port on the host, bound to 127.0.0.1 only.
# host = 8080
# Port inside the guest.
# guest = 80
# "tcp" or "udp".
# protocol = "tcp"
# Listen on another host address; "0.0.0.0" makes the port reachable from other machines.
# host_address = "127.0.0.1"

# The host broker: when this table is present, \`castra up\` starts it; guests reach it at
# 169.254.2.4:<port> (it takes no host port).
# [broker]
# port = 7070
`;
}
