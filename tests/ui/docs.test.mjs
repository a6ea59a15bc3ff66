// The API reference at /api/docs: Redoc, served from the binary, renders the OpenAPI document
// under the page's own content security policy (no CDN, no inline script, no eval), at desktop
// and phone sizes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { BASE, DESKTOP, PHONE, SHOTS, launch } from "./lib.mjs";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

for (const [label, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
  test(`api docs: the reference renders (${label})`, async () => {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const problems = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    // Redoc's sidebar credits Redocly with a logo from its CDN: the page's policy refuses it,
    // and Redoc then leaves it out. That refusal is the one error expected.
    const logo = "https://cdn.redoc.ly/redoc/logo-mini.svg";
    page.on("console", (message) => {
      if (message.type() === "error" && !message.text().includes(logo)) problems.push(`console: ${message.text()}`);
    });
    const outside = [];
    page.on("response", (response) => {
      if (!response.url().startsWith(BASE) && !/^(blob|data):/.test(response.url())) outside.push(response.url());
    });
    const response = await page.goto(`${BASE}/api/docs`);
    assert.equal(response.status(), 200);
    assert.match(response.headers()["content-security-policy"], /script-src 'self'/);
    // Redoc has read the document when the operations of the room API are listed.
    await page.getByRole("heading", { name: "Create a room from a 4chan thread or a list of media URLs" }).first().waitFor({ timeout: 20_000 });
    const text = await page.locator("#redoc").innerText();
    for (const expected of ["The room's current state with its version", "Sign up", "Rooms", "Accounts", "Block an account"]) {
      assert.ok(text.includes(expected), `the reference shows ${expected}`);
    }
    // The answers' schemas are there, from the Rust types: a field of the room state.
    assert.ok(text.includes("playlist"), "the state's schema is shown");
    await page.screenshot({ path: `${SHOTS}/api-docs-${label}.png` });
    assert.deepEqual(outside, [], "the page loads nothing from outside the server");
    assert.equal(await page.locator(`img[src="${logo}"]`).count(), 0, "the refused logo is left out");
    assert.deepEqual(problems, [], "the page runs without errors");
    await context.close();
  });
}
