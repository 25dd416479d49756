import { isIPv4 } from "./cidr.js";
import { type FieldReader, joinPath } from "./fields.js";
import { type BrokerConfig, DEFAULT_HOST_ADDRESS, type PortForward, type Protocol } from "./model.js";

/** Reads `[[vms.port_forwards]]` and `[broker]`: the host ports a project asks for. */

const FORWARD_KEYS = ["host", "guest", "protocol", "host_address"] as const;
const BROKER_KEYS = ["port"] as const;

export function readForwards(value: unknown, path: string, reader: FieldReader): PortForward[] {
  const example = "[[vms.port_forwards]]\nhost = 2222\nguest = 22";
  if (value === undefined) return [];
  const forwards: PortForward[] = [];
  for (const { table: forward, at } of reader.tableList(value, path, FORWARD_KEYS, example)) {
    const port = { min: 1, max: 65535, required: true };
    const host = reader.integer(forward, "host", at, { ...port, example: "host = 2222" });
    const guest = reader.integer(forward, "guest", at, { ...port, example: "guest = 22" });
    const protocol = readProtocol(forward, at, reader);
    const hostAddress = readHostAddress(forward, at, reader);
    if (host === undefined || guest === undefined || !protocol || !hostAddress) continue;
    forwards.push({ host, guest, protocol, hostAddress });
  }
  return forwards;
}

function readProtocol(
  forward: Record<string, unknown>,
  path: string,
  reader: FieldReader,
): Protocol | undefined {
  if (forward.protocol === undefined) return "tcp";
  const text = reader.string(forward, "protocol", path, 'protocol = "tcp"');
  const protocol = text?.toLowerCase();
  if (protocol === "tcp" || protocol === "udp") return protocol;
  if (text !== undefined) {
    reader.fail(
      joinPath(path, "protocol"),
      `must be "tcp" or "udp", not ${JSON.stringify(text)}`,
      'protocol = "tcp"',
    );
  }
  return undefined;
}

function readHostAddress(
  forward: Record<string, unknown>,
  path: string,
  reader: FieldReader,
): string | undefined {
  const example = `host_address = "${DEFAULT_HOST_ADDRESS}"`;
  if (forward.host_address === undefined) return DEFAULT_HOST_ADDRESS;
  const address = reader.string(forward, "host_address", path, example);
  if (address === undefined) return undefined;
  if (!isIPv4(address)) {
    return reader.fail(
      joinPath(path, "host_address"),
      `must be an IPv4 address, not ${JSON.stringify(address)}`,
      example,
    );
  }
  if (!address.startsWith("127.")) {
    reader.warn(
      joinPath(path, "host_address"),
      `${address} makes this forward reachable from other machines`,
    );
  }
  return address;
}

export function readBroker(value: unknown, reader: FieldReader): BrokerConfig | undefined {
  const broker = reader.table(value, "broker", "[broker]\nport = 7070");
  if (!broker) return undefined;
  reader.unknownKeys(broker, "broker", BROKER_KEYS);
  const port = reader.integer(broker, "port", "broker", {
    min: 1,
    max: 65535,
    example: "port = 7070",
    required: true,
  });
  return port === undefined ? undefined : { port };
}
