//! The API documents: OpenAPI 3.1 for HTTP (`/openapi.json`), from [`ROUTES`] and the bodies'
//! Rust types, and AsyncAPI 3.0 for the room WebSocket (`/asyncapi.json`), from the frames'
//! types. Both are generated on request from the code that serves the API, so neither can
//! describe a route, field or frame the server does not have.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::{Auth, ROUTES};
use crate::frames;

/// A documented path served next to the gateway by the same process: path, summary, responses.
type Sibling = (&'static str, &'static str, &'static [(u16, &'static str)]);

/// Operational paths served next to the gateway by the same process.
const SIBLINGS: &[Sibling] = &[
    ("/healthz", "Liveness", &[(200, "alive")]),
    (
        "/readyz",
        "Readiness: NATS, the room stream and the views' lag",
        &[(200, "ready"), (503, "not ready")],
    ),
    ("/metrics", "Prometheus metrics", &[(200, "metrics in the text format")]),
];

const ROOM_ID: &str = "^[a-z0-9-]{3,48}$";

/// The groups of the reference, in its order: (name, description).
const TAGS: [(&str, &str); 4] = [
    ("Rooms", "Create rooms, list them, read their state and history, join them (WebSocket)"),
    ("Accounts", "Sign up and in, keep a session going, and the account's rooms"),
    ("Documents", "This reference, and the documents it is made from"),
    ("Operations", "Health and metrics, for orchestrators and Prometheus"),
];

/// The group of a path.
fn tag(path: &str) -> &'static str {
    if path.starts_with("/api/rooms") {
        "Rooms"
    } else if ["/api/accounts", "/api/sessions", "/api/me"].iter().any(|p| path.starts_with(p)) {
        "Accounts"
    } else if path.ends_with(".json") || path == "/api/docs" {
        "Documents"
    } else {
        "Operations"
    }
}

/// The OpenAPI document as served (made once).
pub fn openapi_text() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| openapi().to_string());
    &TEXT
}

/// The AsyncAPI document as served (made once).
pub fn asyncapi_text() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| asyncapi().to_string());
    &TEXT
}

/// Drops `"default": null` (what the deserialize contract says of a defaulted `Option`): the
/// field's description says what its absence means.
fn no_null_defaults(schema: &mut schemars::Schema) {
    if schema.get("default").is_some_and(Value::is_null) {
        schema.remove("default");
    }
    schemars::transform::transform_subschemas(&mut no_null_defaults, schema);
}

/// The OpenAPI 3.1 document.
pub fn openapi() -> Value {
    // Answers are described as they are written (the serialize contract) and share components.
    // Request bodies are described as they are read (the deserialize contract: a defaulted
    // field is optional), inlined, so the two contracts of one type never meet under one name.
    let mut answers = SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut requests = SchemaSettings::draft2020_12()
        .for_deserialize()
        .with(|s| s.inline_subschemas = true)
        .with_transform(no_null_defaults)
        .into_generator();
    let error = json!({"application/json": {"schema": answers.subschema_for::<apierror::ErrorBody<'static>>()}});
    let mut paths = Map::new();
    for route in ROUTES {
        let mut parameters: Vec<Value> = Vec::new();
        if route.path.contains("{id}") {
            parameters.push(json!({"name": "id", "in": "path", "required": true, "description": "the room id", "schema": {"type": "string", "pattern": ROOM_ID}}));
        }
        if route.path.contains("{username}") {
            parameters.push(json!({"name": "username", "in": "path", "required": true, "description": "an account's username (any case)", "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{3,32}$"}}));
        }
        for (name, kind, description) in route.query {
            parameters.push(json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": kind}}));
        }
        let reply = route.reply.map(|reply| reply(&mut answers));
        let responses: Map<String, Value> = route
            .responses
            .iter()
            .map(|(status, description)| {
                let mut response = json!({"description": description});
                if *status == 429 {
                    response["headers"] = json!({"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}});
                }
                if *status >= 400 {
                    response["content"] = error.clone();
                } else if let Some(schema) = reply.as_ref().filter(|_| *status / 100 == 2) {
                    response["content"] = json!({"application/json": {"schema": schema}});
                }
                (status.to_string(), response)
            })
            .collect();
        let mut operation = json!({
            "tags": [tag(route.path)],
            "summary": route.summary,
            "operationId": format!("{}{}", route.method, route.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": parameters,
            "responses": responses,
        });
        match route.auth {
            Auth::None => {}
            Auth::Required => operation["security"] = json!([{"bearer": []}]),
            Auth::Optional => operation["security"] = json!([{}, {"bearer": []}]),
        }
        if let Some(request) = route.request {
            let schema = request(&mut requests);
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema}}});
        }
        paths.entry(route.path).or_insert_with(|| json!({}))[route.method] = operation;
    }
    for (path, summary, responses) in SIBLINGS {
        let responses: Map<String, Value> =
            responses.iter().map(|(s, d)| (s.to_string(), json!({"description": d}))).collect();
        paths.insert((*path).to_owned(), json!({"get": {"tags": [tag(path)], "summary": summary, "operationId": format!("get{}", path.replace('/', "_")), "responses": responses}}));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Chanshare",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Watch parties from 4chan threads or media URLs. The room and account WebSockets are described by /asyncapi.json.",
        },
        "tags": TAGS.iter().map(|(name, description)| json!({"name": name, "description": description})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": answers.take_definitions(true),
            "securitySchemes": {"bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "an account's access token, from POST /api/sessions (15 minutes; renew with POST /api/sessions/refresh)",
            }},
        },
    })
}

/// A message of the socket: its name, what it is, and its payload type.
fn message<T: JsonSchema>(
    generator: &mut SchemaGenerator,
    name: &str,
    summary: &str,
) -> (String, Value) {
    let payload = generator.subschema_for::<T>();
    (
        name.to_owned(),
        json!({"name": name, "title": name, "summary": summary, "contentType": "application/json", "payload": payload}),
    )
}

/// The AsyncAPI 3.0 document of the room socket.
pub fn asyncapi() -> Value {
    // AsyncAPI's schema format is JSON Schema draft 7 (with its own additions).
    let mut writes = SchemaSettings::draft07()
        .for_serialize()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    // Frames from clients are read (the deserialize contract), inlined like request bodies.
    let mut reads = SchemaSettings::draft07()
        .for_deserialize()
        .with(|s| s.inline_subschemas = true)
        .with_transform(no_null_defaults)
        .into_generator();
    let room = Channel {
        name: "room",
        path: "/api/rooms/{id}/ws",
        title: "A room: one socket per member and room",
        server: vec![
            message::<frames::Welcome<'static>>(
                &mut writes,
                "welcome",
                "The first frame: who the socket is, and where the room is",
            ),
            message::<frames::SnapshotFrame<'static>>(
                &mut writes,
                "snapshot",
                "The room's whole state, after a welcome that could not resume",
            ),
            message::<frames::CommitFrame<'static>>(
                &mut writes,
                "commit",
                "A change to the room: every commit after the welcome's version, in order",
            ),
            message::<frames::CommitsFrame<'static>>(
                &mut writes,
                "commits",
                "Consecutive commits in one frame (only to sockets opened with batch=1): a big room's membership changes, sent together",
            ),
            message::<frames::Reply>(
                &mut writes,
                "reply",
                "ack or reject of a command (by its id), pong of a ping",
            ),
        ],
        client: vec![message::<frames::ClientFrame>(
            &mut reads,
            "request",
            "A command for the room, or a clock probe",
        )],
    };
    let account = Channel {
        name: "account",
        path: "/api/me/ws",
        title: "A signed-in account's direct messages, on each of its devices",
        server: vec![message::<frames::account::ServerFrame<'static>>(
            &mut writes,
            "account_event",
            "dm (a message of one of the account's conversations, sent or received), dm_status (a message it sent moved on), ack or reject of a frame, pong",
        )],
        client: vec![message::<frames::account::ClientFrame>(
            &mut reads,
            "account_request",
            "dm (send a message), dm_read (report messages shown), dm_sync (what the client has: every event after it follows), ping",
        )],
    };
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for channel in [room, account] {
        channels.insert(channel.name.into(), channel.describe());
        let capital = channel.name[..1].to_uppercase() + &channel.name[1..];
        operations.insert(format!("receiveFrom{capital}"), channel.operation("receive"));
        operations.insert(format!("sendTo{capital}"), channel.operation("send"));
        messages.extend(channel.server.into_iter().chain(channel.client));
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Chanshare sockets",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Two WebSockets of JSON text frames. The room socket: the server sends a welcome, then a snapshot or the commits the client missed, then every commit as it happens; the client sends commands and pings. The account socket: a signed-in account's direct messages with sent, delivered and read receipts. Operations are described from the client's side: it receives the server's frames and sends its own. docs/protocol.md and docs/dms.md tell the rest: resuming, close codes, limits.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": writes.take_definitions(true)},
    })
}

/// A socket of the AsyncAPI document.
struct Channel {
    name: &'static str,
    path: &'static str,
    title: &'static str,
    server: Vec<(String, Value)>,
    client: Vec<(String, Value)>,
}

impl Channel {
    fn describe(&self) -> Value {
        let route = ROUTES.iter().find(|route| route.path == self.path);
        let query: Map<String, Value> = route
            .map(|route| route.query)
            .unwrap_or_default()
            .iter()
            .map(|(name, kind, description)| {
                ((*name).to_owned(), json!({"type": kind, "description": description}))
            })
            .collect();
        let messages: Map<String, Value> = self
            .server
            .iter()
            .chain(&self.client)
            .map(|(name, _)| {
                (name.clone(), json!({"$ref": format!("#/components/messages/{name}")}))
            })
            .collect();
        let mut channel = json!({
            "address": self.path,
            "title": self.title,
            "messages": messages,
            "bindings": {"ws": {"method": "GET", "query": {"type": "object", "properties": query}}},
        });
        if self.path.contains("{id}") {
            channel["parameters"] = json!({"id": {"description": "the room id"}});
        }
        channel
    }

    fn operation(&self, action: &str) -> Value {
        let messages = if action == "send" { &self.client } else { &self.server };
        json!({
            "action": action,
            "channel": {"$ref": format!("#/channels/{}", self.name)},
            "messages": messages.iter().map(|(name, _)| json!({"$ref": format!("#/channels/{}/messages/{name}", self.name)})).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` of a document points at something it defines.
    fn refs_resolve(document: &Value, node: &Value) {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let pointer = target.strip_prefix('#').unwrap_or(target);
                    assert!(document.pointer(pointer).is_some(), "dangling {target}");
                }
                map.values().for_each(|value| refs_resolve(document, value));
            }
            Value::Array(items) => items.iter().for_each(|value| refs_resolve(document, value)),
            _ => {}
        }
    }

    #[test]
    fn every_answer_of_every_route_has_a_schema() {
        let document = openapi();
        refs_resolve(&document, &document);
        for route in ROUTES {
            let operation = &document["paths"][route.path][route.method];
            for (status, _) in route.responses {
                let content = &operation["responses"][status.to_string()]["content"];
                let schema = &content["application/json"]["schema"];
                let documented = !schema.is_null();
                let expected = *status >= 400 || (route.reply.is_some() && *status / 100 == 2);
                assert_eq!(documented, expected, "{} {} {status}", route.method, route.path);
                assert_ne!(schema, &json!({"type": "object"}), "{} {status}", route.path);
            }
            assert_eq!(
                operation["requestBody"].is_null(),
                route.request.is_none(),
                "{}",
                route.path
            );
            assert_ne!(tag(route.path), "Operations", "{}", route.path);
        }
        let schemas = &document["components"]["schemas"];
        for name in ["Error", "RoomState", "Created", "LobbyPage", "Item", "Event", "TokenPair"] {
            assert!(schemas[name].is_object(), "{name}: {schemas}");
        }
    }

    #[test]
    fn request_bodies_say_what_is_required() {
        let document = openapi();
        let create = &document["paths"]["/api/rooms"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(create["required"], json!(["source"]), "{create}");
        assert_eq!(create["additionalProperties"], json!(false));
        assert!(create["properties"].get("account").is_none(), "the owner is never the body's");
    }

    #[test]
    fn the_socket_document_names_every_frame() {
        let document = asyncapi();
        refs_resolve(&document, &document);
        let messages = document["components"]["messages"].as_object().map(|m| m.len());
        assert_eq!(messages, Some(8));
        let text = document.to_string();
        for tag in [
            "\"welcome\"",
            "\"snapshot\"",
            "\"commit\"",
            "\"commits\"",
            "\"ack\"",
            "\"reject\"",
            "\"pong\"",
            "\"ping\"",
            "\"seek\"",
            "\"dm_status\"",
            "\"dm_sync\"",
            "\"unknown_user\"",
        ] {
            assert!(text.contains(tag), "{tag}");
        }
    }
}
