//! The API documents: OpenAPI 3.1 for HTTP (`/openapi.json`), from [`ROUTES`] and the bodies'
//! Rust types, and AsyncAPI 3.0 for the room WebSocket (`/asyncapi.json`), from the frames'
//! types. Both are generated on request from the code that serves the API, so neither can
//! describe a route, field or frame the server does not have.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::ROUTES;
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
            "description": "Watch parties from 4chan threads or media URLs. The room WebSocket is described by /asyncapi.json; both are read at /api/docs.",
        },
        "tags": TAGS.iter().map(|(name, description)| json!({"name": name, "description": description})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {"schemas": answers.take_definitions(true)},
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
    let mut generator = SchemaSettings::draft07()
        .for_serialize()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let server = [
        message::<frames::Welcome<'static>>(
            &mut generator,
            "welcome",
            "The first frame: who the socket is, and where the room is",
        ),
        message::<frames::SnapshotFrame<'static>>(
            &mut generator,
            "snapshot",
            "The room's whole state, after a welcome that could not resume",
        ),
        message::<frames::CommitFrame<'static>>(
            &mut generator,
            "commit",
            "A change to the room: every commit after the welcome's version, in order",
        ),
        message::<frames::Reply>(
            &mut generator,
            "reply",
            "ack or reject of a command (by its id), pong of a ping",
        ),
    ];
    // Frames from the client are read (the deserialize contract), inlined like request bodies.
    let mut reads = SchemaSettings::draft07()
        .for_deserialize()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let client = [message::<frames::ClientFrame>(
        &mut reads,
        "request",
        "A command for the room, or a clock probe",
    )];
    let socket = ROUTES.iter().find(|route| route.path.ends_with("/ws"));
    let query: Map<String, Value> = socket
        .map(|route| route.query)
        .unwrap_or_default()
        .iter()
        .map(|(name, kind, description)| {
            ((*name).to_owned(), json!({"type": kind, "description": description}))
        })
        .collect();
    let channel_messages: Map<String, Value> = server
        .iter()
        .chain(&client)
        .map(|(name, _)| (name.clone(), json!({"$ref": format!("#/components/messages/{name}")})))
        .collect();
    let operation = |action: &str, messages: &[(String, Value)]| {
        json!({
            "action": action,
            "channel": {"$ref": "#/channels/room"},
            "messages": messages.iter().map(|(name, _)| json!({"$ref": format!("#/channels/room/messages/{name}")})).collect::<Vec<_>>(),
        })
    };
    let messages: Map<String, Value> = server.iter().chain(&client).cloned().collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Chanshare room socket",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "One WebSocket per member and room: the server sends a welcome, then a snapshot or the commits the client missed, then every commit as it happens; the client sends commands and pings. Frames are JSON text. docs/protocol.md tells the rest: resuming, close codes, limits.",
        },
        "defaultContentType": "application/json",
        "channels": {"room": {
            "address": "/api/rooms/{id}/ws",
            "title": "A room",
            "parameters": {"id": {"description": "the room id"}},
            "messages": channel_messages,
            "bindings": {"ws": {"method": "GET", "query": {"type": "object", "properties": query}}},
        }},
        "operations": {
            "receiveFromRoom": operation("receive", &server),
            "sendToRoom": operation("send", &client),
        },
        "components": {"messages": messages, "schemas": generator.take_definitions(true)},
    })
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
        assert_eq!(messages, Some(5));
        let text = document.to_string();
        for tag in [
            "\"welcome\"",
            "\"snapshot\"",
            "\"commit\"",
            "\"ack\"",
            "\"reject\"",
            "\"pong\"",
            "\"ping\"",
            "\"seek\"",
        ] {
            assert!(text.contains(tag), "{tag}");
        }
    }
}
