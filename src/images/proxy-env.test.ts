import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../errors.js";
import { bypassesProxy, parseProxy, proxyFor } from "./proxy-env.js";

const via = (url: string, env: NodeJS.ProcessEnv) => {
  const proxy = proxyFor(new URL(url), env);
  return proxy && `${proxy.variable} ${proxy.host}:${proxy.port}`;
};

test("https uses https_proxy, http uses http_proxy; the lower-case form wins over the upper-case one", () => {
  const env = { HTTPS_PROXY: "http://upper:3128", HTTP_PROXY: "http://plain:8080" };
  assert.equal(via("https://dl-cdn.alpinelinux.org/x.vhd", env), "HTTPS_PROXY upper:3128");
  assert.equal(via("http://mirror.lan/x.vhd", env), "HTTP_PROXY plain:8080");
  const both = { ...env, https_proxy: "http://lower:3129", http_proxy: "http://lower:8081" };
  assert.equal(via("https://dl-cdn.alpinelinux.org/x.vhd", both), "https_proxy lower:3129");
  assert.equal(via("http://mirror.lan/x.vhd", both), "http_proxy lower:8081");
  // An empty lower-case variable is unset, not "no proxy".
  assert.equal(via("https://a.example/x", { ...env, https_proxy: "" }), "HTTPS_PROXY upper:3128");
});

test("no proxy for file: URLs, for a scheme without its variable, or without any variable", () => {
  assert.equal(via("file:///srv/x.vhd", { HTTP_PROXY: "http://p:1" }), undefined);
  assert.equal(via("https://a.example/x", { HTTP_PROXY: "http://p:1" }), undefined);
  assert.equal(via("http://a.example/x", {}), undefined);
});

test("a proxy without a scheme is http; without a port, port 80; user:password@ becomes Basic auth", () => {
  assert.deepEqual(parseProxy("HTTPS_PROXY", "proxy.corp:3128"), {
    host: "proxy.corp",
    port: 3128,
    authorization: undefined,
    variable: "HTTPS_PROXY",
    shown: "http://proxy.corp:3128",
  });
  assert.equal(parseProxy("HTTP_PROXY", "http://proxy.corp").port, 80);
  assert.equal(parseProxy("HTTP_PROXY", "http://[::1]:3128").host, "::1");
  const authed = parseProxy("https_proxy", "http://ann:p%40ss%3Aw0rd@proxy.corp:3128/");
  assert.equal(authed.authorization, `Basic ${Buffer.from("ann:p@ss:w0rd").toString("base64")}`);
  assert.equal(authed.shown, "http://ann:***@proxy.corp:3128/");
});

test("a proxy castra cannot use is a usage error naming the variable, never its password", () => {
  for (const value of [
    "socks5://ann:secret@proxy:1080",
    "https://ann:secret@proxy:443",
    "http://ann:%zz@proxy:1",
  ]) {
    const err = (() => {
      try {
        parseProxy("HTTPS_PROXY", value);
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof UsageError, value);
    assert.match(err.headline, /^HTTPS_PROXY is not a usable proxy/);
    assert.doesNotMatch(`${err.headline} ${err.detail} ${err.hint}`, /secret|%zz/);
  }
});

test("NO_PROXY: * and domains, with or without a leading dot, cover the domain and its sub-domains", () => {
  const exempt = (url: string, list: string) => bypassesProxy(new URL(url), list);
  assert.equal(exempt("https://anything.example/", "*"), true);
  for (const list of ["example.com", ".example.com", "*.example.com", "EXAMPLE.COM."]) {
    assert.equal(exempt("https://example.com/x", list), true, list);
    assert.equal(exempt("https://dl.cdn.example.com/x", list), true, list);
    assert.equal(exempt("https://notexample.com/x", list), false, list);
    assert.equal(exempt("https://example.com.evil.net/x", list), false, list);
  }
  assert.equal(exempt("https://mirror.lan./x", "mirror.lan"), true, "a trailing dot on the host");
  assert.equal(exempt("https://b.example/x", "a.example, b.example c.example"), true, "commas and spaces");
  assert.equal(exempt("https://b.example/x", ""), false);
});

test("NO_PROXY: a port exempts that port only, the scheme's default port included", () => {
  const exempt = (url: string, list: string) => bypassesProxy(new URL(url), list);
  assert.equal(exempt("http://mirror.lan:8080/x", "mirror.lan:8080"), true);
  assert.equal(exempt("http://mirror.lan:8081/x", "mirror.lan:8080"), false);
  assert.equal(exempt("https://mirror.lan/x", "mirror.lan:443"), true);
  assert.equal(exempt("http://mirror.lan/x", "mirror.lan:443"), false);
});

test("NO_PROXY: IP addresses and CIDR blocks match IP hosts, never names", () => {
  const exempt = (url: string, list: string) => bypassesProxy(new URL(url), list);
  assert.equal(exempt("http://127.0.0.1:8080/x", "127.0.0.1"), true);
  assert.equal(exempt("http://127.0.0.1:8080/x", "127.0.0.1:8080"), true);
  assert.equal(exempt("http://10.1.2.3/x", "10.0.0.0/8"), true);
  assert.equal(exempt("http://11.1.2.3/x", "10.0.0.0/8"), false);
  assert.equal(exempt("http://127.0.0.1/x", "0.0.1"), false, "a name suffix never matches an address");
  assert.equal(exempt("http://[::1]:8080/x", "::1"), true);
  assert.equal(exempt("http://[::1]:8080/x", "[::1]:8080"), true);
  assert.equal(exempt("http://[fd00::5]/x", "fd00::/8"), true);
  assert.equal(exempt("http://[fd00::5]/x", "10.0.0.0/8"), false);
  assert.equal(exempt("http://localhost/x", "127.0.0.1"), false, "names are not resolved");
});

test("a NO_PROXY match sends the request direct; no_proxy wins over NO_PROXY", () => {
  const env = { HTTPS_PROXY: "http://p:3128", NO_PROXY: "castra.invalid" };
  assert.equal(via("https://images.castra.invalid/x", env), undefined);
  assert.equal(via("https://dl-cdn.alpinelinux.org/x", env), "HTTPS_PROXY p:3128");
  assert.equal(
    via("https://images.castra.invalid/x", { ...env, no_proxy: "other.example" }),
    "HTTPS_PROXY p:3128",
  );
});
