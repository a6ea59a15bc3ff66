// A small program against the client generated from /openapi.json (check.mjs generates it into
// generated/api.d.ts and runs this compiled): it signs up, creates a room, reads it back as a
// guest would (state, members, history) and finds it among the account's rooms. Type errors
// here mean the document no longer describes what a client needs.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/api.js";

type RoomState = components["schemas"]["RoomState"];
type Event = components["schemas"]["Event"];

const client = createClient<paths>({ baseUrl: process.env.BASE_URL });
const fail = (what: string, error: unknown): never => {
  throw new Error(`${what} failed: ${JSON.stringify(error)}`);
};

const username = `client_${Date.now().toString(36)}`;
const password = "a generated client's password";
const signedUp = await client.POST("/api/accounts", { body: { username, password } });
if (!signedUp.data) fail("sign-up", signedUp.error);
const session = await client.POST("/api/sessions", { body: { username, password } });
const tokens = session.data ?? fail("sign-in", session.error);
const auth = { Authorization: `Bearer ${tokens.access_token}` };

const created = await client.POST("/api/rooms", {
  headers: auth,
  body: { title: "made by the generated client", source: { urls: ["https://example.com/a.webm"] }, control: "host" },
});
const id: string = (created.data ?? fail("create", created.error)).room_id;

const read = await client.GET("/api/rooms/{id}", { params: { path: { id } } });
const room: RoomState = read.data ?? fail("read", read.error);
const owner = room.members.find((member) => member.owner === true);
const first = room.playlist[0];

const members = await client.GET("/api/rooms/{id}/members", { params: { path: { id } } });
const listed = (members.data ?? fail("members", members.error)).members.map((m) => m.account ?? m.name);

const history = await client.GET("/api/rooms/{id}/events", { params: { path: { id }, query: { after: 0 } } });
const events: Event[] = (history.data ?? fail("history", history.error)).commits.flatMap((c) => c.events);
const titles = events.flatMap((event) => (event.type === "room_created" ? [event.title] : []));

const mine = await client.GET("/api/me/rooms", { headers: auth });
const visited = (mine.data ?? fail("my rooms", mine.error)).rooms.find((r) => r.room_id === id);

console.log(
  `client: created ${id} "${room.title}" at version ${room.version}: ${room.playlist.length} item(s), first ${first?.kind} "${first?.title}", ` +
    `control ${room.settings.control}, owner ${owner?.account}, members ${listed.join(" ")}, created as "${titles[0]}", ` +
    `in ${username}'s rooms: ${visited ? `visited at ${visited.visited_ms}` : "not yet"}`,
);

const missing = await client.GET("/api/rooms/{id}", { params: { path: { id: "no-such-room" } } });
if (missing.response.status !== 404 || missing.error?.error.code !== "not_found") throw new Error("a missing room is not a 404");
