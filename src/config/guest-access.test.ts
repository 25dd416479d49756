import assert from "node:assert/strict";
import { test } from "node:test";
import { DataError } from "../errors.js";
import { canonicalCidr, cidrContains, parseCidr } from "./cidr.js";
import { parseProject } from "./load.js";

const FILE = "/proj/castra.toml";
const vm = (body: string) => `[[vms]]\nname = "box"\nbase_image = "box.qcow2"\n${body}`;

function shown(text: string): string {
  try {
    parseProject(text, FILE, "/proj");
  } catch (err) {
    assert.ok(err instanceof DataError, String(err));
    return `${err.headline}\n${err.detail}\nhint: ${err.hint}`;
  }
  assert.fail("expected the config to be rejected");
}

test("guest access settings parse into the model; paths resolve against the config's directory", () => {
  const project = parseProject(
    vm(`subnet = "10.0.2.0/24"
authorized_keys = ["keys/me.pub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0 me@laptop"]
user_data = "cloud/user-data.sh"
metadata = "none"
ssh = false
ssh_user = "dev"
`),
    FILE,
  );
  const [box] = project.vms;
  assert.equal(box?.subnet, "10.0.2.0/24");
  assert.deepEqual(box?.authorizedKeys, [
    "keys/me.pub",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0 me@laptop",
  ]);
  assert.equal(box?.userData, "/proj/cloud/user-data.sh");
  assert.equal(box?.metadata, "none");
  assert.equal(box?.ssh, false);
  assert.equal(box?.sshUser, "dev");
  assert.deepEqual(project.warnings, []);
});

test("unset settings stay absent, so castra's defaults and the image profile apply", () => {
  const [box] = parseProject(vm(""), FILE).vms;
  for (const key of ["subnet", "authorizedKeys", "userData", "metadata", "ssh", "sshUser"]) {
    assert.ok(box && !(key in box), `${key} should be absent`);
  }
});

test("subnet must be an IPv4 network of /8 to /27 without host bits", () => {
  assert.match(
    shown(vm('subnet = "10.0.2.0"')),
    /vms\[0\]\.subnet must be an IPv4 network like "10\.0\.2\.0\/24"/,
  );
  assert.match(shown(vm('subnet = "10.0.2.300/24"')), /must be an IPv4 network/);
  assert.match(shown(vm('subnet = "10.0.2.0/30"')), /needs a prefix length from \/8 to \/27, not \/30/);
  const hostBits = shown(vm('subnet = "10.0.2.7/24"'));
  assert.match(hostBits, /has host bits set: the network is 10\.0\.2\.0\/24/);
  assert.match(hostBits, /example: subnet = "10\.0\.2\.0\/24"/);
  assert.match(shown(vm("subnet = 10")), /vms\[0\]\.subnet must be a string, not the number 10/);
});

test('metadata is "ec2" or "none", and "ec2" needs a subnet that holds 169.254.169.254', () => {
  assert.match(shown(vm('metadata = "aws"')), /vms\[0\]\.metadata must be "ec2" or "none", not "aws"/);
  assert.match(
    shown(vm('metadata = "ec2"\nsubnet = "10.0.2.0/24"')),
    /vms\[0\]\.metadata "ec2" needs 169\.254\.169\.254 inside the VM's network, and subnet 10\.0\.2\.0\/24 does not contain it/,
  );
  // A subnet that still holds the metadata address keeps castra's service.
  const [box] = parseProject(vm('metadata = "ec2"\nsubnet = "169.254.128.0/17"'), FILE).vms;
  assert.equal(box?.metadata, "ec2");
});

test("authorized_keys is a list of single-line, non-empty strings", () => {
  assert.match(
    shown(vm('authorized_keys = "~/.ssh/id_ed25519.pub"')),
    /vms\[0\]\.authorized_keys must be a list of strings, not the string/,
  );
  assert.match(
    shown(vm("authorized_keys = [1]")),
    /vms\[0\]\.authorized_keys\[0\] must be a string, not the number 1/,
  );
  assert.match(shown(vm('authorized_keys = ["  "]')), /authorized_keys\[0\] must not be empty/);
  assert.match(
    shown(vm('authorized_keys = ["ssh-ed25519 AAAA a\\nssh-rsa BBBB b"]')),
    /authorized_keys\[0\] must be one key line or one path, without line breaks/,
  );
});

test("ssh is a boolean and ssh_user a login name; user_data a path", () => {
  assert.match(shown(vm('ssh = "no"')), /vms\[0\]\.ssh must be true or false, not the string "no"/);
  assert.match(shown(vm('ssh_user = "-oProxyCommand=x"')), /ssh_user "-oProxyCommand=x" is not a login name/);
  assert.match(shown(vm("user_data = 5")), /vms\[0\]\.user_data must be a string/);
  assert.match(shown(vm('user_data = "a\\nb"')), /user_data must not contain control characters/);
});

test("CIDR helpers: parse, canonical form, membership", () => {
  const link = parseCidr("169.254.0.0/16");
  assert.ok(link);
  assert.equal(cidrContains(link, "169.254.169.254"), true);
  assert.equal(cidrContains(link, "169.255.0.1"), false);
  assert.equal(canonicalCidr(parseCidr("192.168.77.9/20") ?? link), "192.168.64.0/20");
  assert.equal(parseCidr("1.2.3.4/33"), undefined);
  assert.equal(parseCidr("::1/64"), undefined);
});
