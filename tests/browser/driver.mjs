// Drives headless Chromium for the Rust browser tests (tests/src/browser.rs): one JSON
// request per line on stdin, one JSON answer per line on stdout, in order. Each page gets
// its own browser context (its own storage, so its own identity). Page console output goes
// to stderr, prefixed with the page's number.
//
// Requests: {op:"version"} -> Chromium's version; {op:"open", url} -> page number; {op:"eval", page, js} -> the value of the
// expression `js` in the page (awaited); {op:"type", page, selector, text} -> fills the
// element and presses Enter; {op:"reload", page}; {op:"close", page}; {op:"memory", page} -> Chromium's
// Performance metrics (JSHeapUsedSize, ...). Answers are {ok: value} or {err: message}.
//
// Chromium flags, and why (../shared/notes/browser-build-and-test.md §7):
//   --allow-loopback-in-peer-connection  gather 127.0.0.1 candidates: the tests run in a
//                                        network namespace that has only loopback;
//   --use-fake-ui-for-media-stream       grants media permission, without which Chromium
//                                        hides host addresses (mDNS names, or none at all).
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import path from "node:path";

const modules = process.env.PLAYWRIGHT_MODULES
  ?? path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../target/tools/npm/node_modules");
const require = createRequire(path.join(modules, "index.js"));
const { chromium } = require("playwright-core");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  // CHROMIUM_ARGS (space-separated) replaces them, for experiments (docs/operations.md).
  args: process.env.CHROMIUM_ARGS !== undefined
    ? process.env.CHROMIUM_ARGS.split(" ").filter(Boolean)
    : ["--allow-loopback-in-peer-connection", "--use-fake-ui-for-media-stream"],
});
const pages = [];

async function handle(req) {
  switch (req.op) {
    case "version":
      return browser.version();
    case "open": {
      const context = await browser.newContext();
      const page = await context.newPage();
      const n = pages.length;
      page.on("console", (m) => process.stderr.write(`[page ${n}] ${m.type()}: ${m.text()}\n`));
      page.on("pageerror", (e) => process.stderr.write(`[page ${n}] error: ${e.message}\n`));
      pages.push({ page, context, cdp: null });
      await page.goto(req.url);
      return n;
    }
    case "eval":
      return await pages[req.page].page.evaluate(req.js);
    case "type": {
      const { page } = pages[req.page];
      await page.fill(req.selector, req.text);
      await page.press(req.selector, "Enter");
      return null;
    }
    case "reload":
      await pages[req.page].page.reload();
      return null;
    case "close": {
      const p = pages[req.page];
      await p.context.close();
      return null;
    }
    case "memory": {
      const p = pages[req.page];
      p.cdp ??= await p.context.newCDPSession(p.page);
      await p.cdp.send("Performance.enable");
      const { metrics } = await p.cdp.send("Performance.getMetrics");
      return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
    }
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    const value = await handle(JSON.parse(line));
    answer = { ok: value === undefined ? null : value };
  } catch (e) {
    answer = { err: String(e?.message ?? e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
await browser.close();
