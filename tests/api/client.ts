// A small program against the client generated from /openapi.json (check.mjs generates it into
// generated/api.d.ts): it creates a room and reads its state. Type errors here mean the
// document no longer describes what a client needs.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/api.js";

type RoomState = components["schemas"]["RoomState"];

const client = createClient<paths>({ baseUrl: process.env.BASE_URL });

const created = await client.POST("/api/rooms", {
  body: { title: "made by the generated client", source: { urls: ["https://example.com/a.webm"] }, control: "host" },
});
if (!created.data) throw new Error(`create failed: ${created.error?.error.code}: ${created.error?.error.message}`);
const id: string = created.data.room_id;

const read = await client.GET("/api/rooms/{id}", { params: { path: { id } } });
if (!read.data) throw new Error(`read failed: ${read.error?.error.code}`);
const room: RoomState = read.data;
const host = room.members.find((member) => member.role === "host");
const first = room.playlist[0];
console.log(`client: created ${id} "${room.title}" at version ${room.version}: ${room.playlist.length} item(s), first ${first?.kind} "${first?.title}", control ${room.settings.control}, host ${host?.name}`);

const missing = await client.GET("/api/rooms/{id}", { params: { path: { id: "no-such-room" } } });
if (missing.response.status !== 404 || missing.error?.error.code !== "not_found") throw new Error("a missing room is not a 404");
