// Shared by the browser tests: the Chromium launch, room creation, pages, sampling.
// Run by tests/it/browser.rs, which starts the servers and passes BASE_URL, MEDIA_BASE and
// SCREENSHOTS.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

export const BASE = process.env.BASE_URL;
export const MEDIA = process.env.MEDIA_BASE;
export const SHOTS = process.env.SCREENSHOTS;
export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
      "--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"],
  });
}

export async function api(method, path, body) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

export async function createRoom({ urls, chan, control = "everyone", title = "test room", name = "host" }) {
  const source = chan ? { chan } : { urls };
  const reply = await api("POST", "/api/rooms", { title, control, name, source });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  return reply.body;
}

export const media = (file) => `${MEDIA}/wsg/${file}`;

// A page in its own browser context (its own storage: another person), joined as `name`.
export async function open(browser, room, name, { token, viewport = DESKTOP, init, bypassCSP = false } = {}) {
  const context = await browser.newContext({ viewport, bypassCSP });
  if (init) await context.addInitScript(init.script, init.arg);
  if (token) await context.addInitScript(([id, t]) => localStorage.setItem(`chanshare:token:${id}`, t), [room.room_id, token]);
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${name}] page error:`, error.message));
  await page.goto(`${BASE}/r/${room.room_id}?name=${encodeURIComponent(name)}`);
  await page.waitForFunction(() => window.chanshare && window.chanshare.session.room);
  return page;
}

export const closeAll = (pages) => Promise.all(pages.map((p) => p.context().close()));
export const sample = (page) => page.evaluate(() => window.chanshare.sample());
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const send = (page, command) => page.evaluate((c) => window.chanshare.command(c), command);

export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// Samples two pages for `ms` while both play the same item; returns the p95 of the difference
// between their positions (each against its own view of the room clock), in ms.
export async function syncP95(a, b, ms, label) {
  const diffs = [];
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const [x, y] = await Promise.all([sample(a), sample(b)]);
    if (x.item && x.item === y.item && x.playing && y.playing && x.drift !== null && y.drift !== null && x.target > 0.3) {
      // Both drifts are against the same room clock, so their difference is how far apart the
      // two players are.
      diffs.push(Math.abs(x.drift - y.drift) * 1000);
    }
    await sleep(100);
  }
  const p95 = percentile(diffs, 95);
  console.log(`sync${label ? ` (${label})` : ""}: ${diffs.length} samples, p50 ${percentile(diffs, 50)?.toFixed(1)} ms, p95 ${p95?.toFixed(1)} ms between the two pages`);
  return { p95, samples: diffs.length };
}

// Runs axe-core in the page (opened with `bypassCSP`: the page's policy forbids injected
// scripts); returns the violations of impact serious or critical.
const require = createRequire(import.meta.url);
export async function axe(page) {
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  const result = await page.evaluate(async () => window.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
}
