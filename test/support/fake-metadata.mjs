// A fake EC2 metadata service for QEMU's guestfwd `cmd:`: stdin/stdout is one guest connection, answered once.
// Usage: node fake-metadata.mjs <table.json> (the shape of FakeMetadata in fake-metadata.ts). Plain JavaScript,
// so that QEMU starting one node per connection stays fast.
import { appendFileSync, readFileSync } from "node:fs";

const table = JSON.parse(readFileSync(process.argv[2], "utf8"));

function log(event) {
  if (table.log) appendFileSync(table.log, `${process.pid} ${event}\n`);
}

function answer(method, path, token) {
  if (method === "PUT" && path === "/latest/api/token") return [200, Buffer.from(table.token)];
  if (token !== undefined && token !== table.token) return [401, Buffer.alloc(0)];
  if (path === "/latest/user-data" && table.userDataBytes)
    return [200, Buffer.alloc(table.userDataBytes, "u")];
  if (path in table.paths) return [200, Buffer.from(table.paths[path])];
  return [404, Buffer.alloc(0)];
}

let request = "";
let answered = false;
log("open");
process.stdin.on("data", (chunk) => {
  request += chunk;
  const end = request.indexOf("\r\n\r\n");
  if (answered || end < 0) return;
  answered = true;
  const [line, ...headers] = request.slice(0, end).split("\r\n");
  const [method, path] = line.split(" ");
  const tokenHeader = headers.find((h) => h.toLowerCase().startsWith("x-aws-ec2-metadata-token:"));
  const token = tokenHeader?.slice(tokenHeader.indexOf(":") + 1).trim();
  log(`request ${method} ${path}`);
  const [status, body] = answer(method, path, token);
  const head = Buffer.from(`HTTP/1.0 ${status} X\r\nContent-Length: ${body.length}\r\n\r\n`);
  process.stdout.write(Buffer.concat([head, body]), (error) => {
    log(error ? `failed ${status} ${path} ${error.code}` : `answered ${status} ${path}`);
    process.exit(0);
  });
});
process.stdin.on("end", () => {
  if (!answered) log(`abandoned ${JSON.stringify(request)}`);
});
