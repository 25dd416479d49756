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

# Forward a host port to a guest port (here SSH); repeat the table for more.
[[vms.port_forwards]]
# Port on the host, bound to 127.0.0.1 only.
host = 2222
# Port inside the guest.
guest = 22
# "tcp" or "udp".
protocol = "tcp"
# Listen on another host address; "0.0.0.0" makes the port reachable from other machines.
# host_address = "127.0.0.1"

# The host broker: when this table is present, \`castra up\` starts it on 127.0.0.1:<port>.
# [broker]
# port = 7070
`;
}
