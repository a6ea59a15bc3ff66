// The API documents against a real server (run by tests/it/documents.rs, which provides
// BASE_URL, ROOM — a room with many kinds of events — and FRAMES — socket frames it sent and
// received):
// 1. /asyncapi.json is a valid AsyncAPI 3 document (@asyncapi/parser);
// 2. real answers of every HTTP route, and the real socket frames, match the schemas the two
//    documents give them (ajv), and every documented success answer was met;
// 3. a TypeScript client generated from /openapi.json (openapi-typescript) type-checks
//    (tsc --noEmit) and, compiled, creates a room and reads it back.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import Ajv from "ajv";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { Parser } from "@asyncapi/parser";

const BASE = process.env.BASE_URL;
const ROOM = process.env.ROOM;
const FRAMES = JSON.parse(readFileSync(process.env.FRAMES, "utf8"));
assert.ok(BASE && ROOM, "BASE_URL and ROOM are set");

const openapi = await (await fetch(`${BASE}/openapi.json`)).json();
const asyncapi = await (await fetch(`${BASE}/asyncapi.json`)).json();

// 1. The AsyncAPI document is valid.
{
  const { document, diagnostics } = await new Parser().parse(JSON.stringify(asyncapi));
  const errors = diagnostics.filter((d) => d.severity === 0);
  assert.ok(document && errors.length === 0, `asyncapi.json: ${JSON.stringify(errors, null, 1)}`);
  const warnings = diagnostics.filter((d) => d.severity === 1).map((d) => `${d.code}: ${d.message}`);
  console.log(`asyncapi: valid, ${document.messages().length} messages, ${warnings.length} warnings${warnings.length ? `\n  ${warnings.join("\n  ")}` : ""}`);
}

// 2. Answers and frames match their schemas.
function withFormats(ajv) {
  addFormats(ajv);
  // schemars marks Rust integer widths and floats; the schemas' minimum/maximum carry the range.
  for (const format of ["uint", "uint8", "uint16", "uint32", "uint64", "int32", "int64"]) {
    ajv.addFormat(format, { type: "number", validate: Number.isInteger });
  }
  for (const format of ["float", "double"]) ajv.addFormat(format, { type: "number", validate: () => true });
  return ajv;
}
// The documents' object schemas are open (a client must ignore fields it does not know), so to
// see a field the server sends and the document lacks, the checks use copies that close them.
// (2020-12's unevaluatedProperties sees through allOf/anyOf/oneOf, so it closes the composed
// schema rather than its branches; draft 7's additionalProperties closes plain objects only.)
const COMPOSITIONS = ["allOf", "anyOf", "oneOf"];
function closed(node, keyword, branch = false) {
  if (Array.isArray(node)) return node.map((n) => closed(n, keyword, branch));
  if (node === null || typeof node !== "object") return node;
  const copy = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, closed(v, keyword, COMPOSITIONS.includes(k))]));
  const composed = COMPOSITIONS.some((k) => k in copy);
  const close = keyword === "unevaluatedProperties" ? !branch && (copy.properties || composed) : copy.properties && !composed;
  if (close && !(keyword in copy)) copy[keyword] = false;
  return copy;
}
// strict: false, because the documents themselves (not only their schemas) are added, to be
// referred into by JSON pointer.
const http = withFormats(new Ajv2020({ strict: false, allErrors: true }));
http.addSchema(closed(openapi, "unevaluatedProperties"), "openapi");
const socket = withFormats(new Ajv({ strict: false, allErrors: true }));
socket.addSchema(closed(asyncapi, "additionalProperties"), "asyncapi");

const pointer = (...segments) => segments.map((s) => encodeURIComponent(String(s).replaceAll("~", "~0").replaceAll("/", "~1"))).join("/");
const validators = new Map();
function validate(ajv, ref, value, what) {
  if (!validators.has(ref)) validators.set(ref, ajv.compile({ $ref: ref }));
  const check = validators.get(ref);
  assert.ok(check(value), `${what} does not match its schema:\n${JSON.stringify(check.errors, null, 1)}\n${JSON.stringify(value).slice(0, 2000)}`);
}

const met = new Set();
async function call(method, template, { id, query, body, token, contentType } = {}) {
  const url = new URL(BASE + template.replace("{id}", id ?? "").replace("{username}", id ?? ""));
  for (const [key, value] of Object.entries(query ?? {})) url.searchParams.set(key, value);
  const headers = {};
  if (body !== undefined) headers["content-type"] = contentType ?? "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: method.toUpperCase(), headers, body: typeof body === "string" || body === undefined ? body : JSON.stringify(body) });
  const text = await response.text();
  const status = String(response.status);
  const operation = openapi.paths[template]?.[method];
  assert.ok(operation, `${method} ${template} is in the document`);
  const documented = operation.responses[status];
  assert.ok(documented, `${method} ${url.pathname} answered ${status}, which the document does not list: ${text}`);
  let json;
  if (documented.content?.["application/json"]?.schema) {
    json = JSON.parse(text);
    validate(http, `openapi#/${pointer("paths", template, method, "responses", status, "content", "application/json", "schema")}`, json, `${method} ${url.pathname} ${status}`);
  }
  met.add(`${method} ${template} ${status}`);
  return { status: response.status, body: json ?? text };
}

const username = `doc${randomUUID().slice(0, 8)}`;
const password = "correct horse battery staple";
assert.equal((await call("post", "/api/accounts", { body: { username, password } })).status, 201);
assert.equal((await call("post", "/api/accounts", { body: { username, password } })).status, 409);
assert.equal((await call("post", "/api/accounts", { body: { username: "x", password } })).status, 400);
assert.equal((await call("post", "/api/accounts", { body: "{}", contentType: "text/plain" })).status, 415);
assert.equal((await call("post", "/api/sessions", { body: { username, password: "wrong password!" } })).status, 401);
const session = await call("post", "/api/sessions", { body: { username, password } });
assert.equal(session.status, 200);
let { access_token: access, refresh_token: refresh } = session.body;
assert.equal((await call("get", "/api/me", { token: access })).status, 200);
assert.equal((await call("get", "/api/me")).status, 401);

const created = await call("post", "/api/rooms", { token: access, body: { title: `documents ${username}`, source: { urls: ["https://example.com/a.webm", "https://example.com/b.png"] } } });
assert.equal(created.status, 201);
const mine = created.body.room_id;
assert.equal((await call("post", "/api/rooms", { body: { source: { urls: [] }, colour: "red" } })).status, 400);
for (const id of [ROOM, mine]) {
  assert.equal((await call("get", "/api/rooms/{id}", { id })).status, 200);
  assert.equal((await call("get", "/api/rooms/{id}/members", { id })).status, 200);
  assert.equal((await call("get", "/api/rooms/{id}/events", { id, query: { after: "0", limit: "1000" } })).status, 200);
  assert.equal((await call("get", "/api/rooms/{id}/rewatch", { id })).status, 200);
  assert.equal((await call("get", "/api/rooms/{id}/rewatch/state", { id, query: { version: "1" } })).status, 200);
  assert.equal((await call("get", "/api/rooms/{id}/rewatch/state", { id, query: { at_ms: String(Date.now()) } })).status, 200);
}
assert.equal((await call("get", "/api/rooms/{id}/rewatch/state", { id: ROOM })).status, 400);
assert.equal((await call("get", "/api/rooms/{id}/rewatch/state", { id: ROOM, query: { at_ms: "5" } })).status, 400);
assert.equal((await call("get", "/api/rooms/{id}/rewatch", { id: "no-such-room" })).status, 404);
// The account that created a room decides on its rewatch.
assert.equal((await call("put", "/api/rooms/{id}/rewatch", { id: mine, body: { rewatch: false } })).status, 401);
assert.equal((await call("put", "/api/rooms/{id}/rewatch", { id: mine, token: access, body: { rewatch: false } })).status, 204);
assert.equal((await call("get", "/api/rooms/{id}/rewatch", { id: mine })).status, 403);
assert.equal((await call("put", "/api/rooms/{id}/rewatch", { id: mine, token: access, body: { rewatch: true } })).status, 204);
assert.equal((await call("put", "/api/rooms/{id}/rewatch", { id: mine, token: access, body: { rewatch: "yes" } })).status, 400);
assert.equal((await call("get", "/api/rooms/{id}", { id: "BAD_ID" })).status, 400);
assert.equal((await call("get", "/api/rooms/{id}", { id: "no-such-room" })).status, 404);
assert.equal((await call("get", "/api/rooms/{id}/events", { id: ROOM, query: { limit: "0" } })).status, 400);
// The views are eventually consistent: the lobby and "your rooms" list the room soon.
const deadline = Date.now() + 15_000;
for (;;) {
  const lobby = await call("get", "/api/rooms", { query: { limit: "200" } });
  const rooms = await call("get", "/api/me/rooms", { token: access });
  if (lobby.body.rooms.some((r) => r.room_id === mine) && rooms.body.rooms.some((r) => r.room_id === mine)) break;
  assert.ok(Date.now() < deadline, "the room reached the lobby and the account's rooms");
  await new Promise((resolve) => setTimeout(resolve, 200));
}
assert.equal((await call("get", "/api/rooms", { query: { cursor: "not a cursor" } })).status, 400);
assert.equal((await call("get", "/api/rooms", { query: { closed: "true" } })).status, 200);
assert.equal((await call("get", "/api/rooms", { query: { closed: "true", q: "x" } })).status, 400);
// Direct messages: docs_ann (DM_TOKEN) wrote to docs_ben, who read it.
const dm = process.env.DM_TOKEN;
for (;;) {
  const inbox = await call("get", "/api/me/conversations", { token: dm });
  if (inbox.body.length > 0 && inbox.body[0].last.status === "read") break;
  assert.ok(Date.now() < deadline, "the conversation reached the inbox");
  await new Promise((resolve) => setTimeout(resolve, 200));
}
assert.equal((await call("get", "/api/me/conversations/{username}", { id: "docs_ben", token: dm, query: { limit: "10" } })).body.length, 1);
assert.equal((await call("get", "/api/me/conversations/{username}", { id: "docs_ben", token: dm, query: { limit: "0" } })).status, 400);
assert.equal((await call("post", "/api/me/blocks/{username}", { id: "docs_ben", token: dm })).status, 204);
assert.equal((await call("delete", "/api/me/blocks/{username}", { id: "docs_ben", token: dm })).status, 204);
assert.equal((await call("post", "/api/me/blocks/{username}", { id: "nobody_here", token: dm })).status, 404);
const renewed = await call("post", "/api/sessions/refresh", { body: { refresh_token: refresh } });
assert.equal(renewed.status, 200);
assert.equal((await call("post", "/api/sessions/refresh", { body: { refresh_token: refresh } })).status, 401);
({ access_token: access, refresh_token: refresh } = renewed.body);
assert.equal((await call("delete", "/api/sessions", { token: access })).status, 401, "the reused refresh token revoked the session");

// Every success answer the document describes was met (and checked) above.
for (const [template, methods] of Object.entries(openapi.paths)) {
  for (const [method, operation] of Object.entries(methods)) {
    for (const [status, response] of Object.entries(operation.responses)) {
      if (status.startsWith("2") && response.content) assert.ok(met.has(`${method} ${template} ${status}`), `not exercised: ${method} ${template} ${status}`);
    }
  }
}
// The schemas are not a formality: an answer that lacks what they require does not pass.
const roomState = `openapi#/${pointer("paths", "/api/rooms/{id}", "get", "responses", "200", "content", "application/json", "schema")}`;
validators.get(roomState)({ room_id: ROOM }) && assert.fail("a state without its fields matches the state schema");
console.log(`http: ${met.size} route answers match the OpenAPI document`);

const MESSAGE = { welcome: "welcome", snapshot: "snapshot", commit: "commit", ack: "reply", reject: "reply", pong: "reply" };
for (const frame of FRAMES.received) {
  const name = MESSAGE[frame.type];
  assert.ok(name, `a frame the document does not name: ${JSON.stringify(frame)}`);
  validate(socket, `asyncapi#/${pointer("components", "messages", name, "payload")}`, frame, `${frame.type} frame`);
}
const request = `asyncapi#/${pointer("components", "messages", "request", "payload")}`;
for (const frame of FRAMES.sent) validate(socket, request, frame, "client frame");
// The schema is not a formality: a frame the server rejects does not match it either.
for (const frame of FRAMES.refused) {
  validators.get(request)(frame) && assert.fail(`a refused frame matches the request schema: ${JSON.stringify(frame)}`);
}
// The account socket: what it sent and received in a conversation.
const accountEvent = `asyncapi#/${pointer("components", "messages", "account_event", "payload")}`;
const accountRequest = `asyncapi#/${pointer("components", "messages", "account_request", "payload")}`;
for (const frame of FRAMES.account_received) validate(socket, accountEvent, frame, `account ${frame.type} frame`);
for (const frame of FRAMES.account_sent) validate(socket, accountRequest, frame, `account ${frame.type} request`);
const accountTypes = new Set(FRAMES.account_received.map((f) => f.type));
for (const type of ["dm", "dm_status", "ack", "reject", "pong"]) assert.ok(accountTypes.has(type), `an account ${type} frame was checked`);
console.log(`socket: ${FRAMES.received.length + FRAMES.account_received.length} server frames and ${FRAMES.sent.length + FRAMES.account_sent.length} client frames match the AsyncAPI document`);

// 3. A generated client type-checks and works.
rmSync("generated", { recursive: true, force: true });
rmSync("build", { recursive: true, force: true });
mkdirSync("generated");
writeFileSync("generated/openapi.json", JSON.stringify(openapi));
const run = (file, args, env) => execFileSync(process.execPath, [file, ...args], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } }).toString();
run("node_modules/openapi-typescript/bin/cli.js", ["generated/openapi.json", "--output", "generated/api.d.ts"]);
// The type-check CI asks for, then the build that runs it.
run("node_modules/typescript/bin/tsc", ["--noEmit", "-p", "."]);
run("node_modules/typescript/bin/tsc", ["-p", "."]);
process.stdout.write(run("build/client.js", [], { BASE_URL: BASE }));
