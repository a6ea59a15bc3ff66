// The API reference at /api/docs: Redoc (vendored, see ui/vendor/README.md) renders the
// OpenAPI document the server generates from its own routes and types.
"use strict";

Redoc.init(
  "/openapi.json",
  { expandResponses: "200,201", hideHostname: true, sortPropsAlphabetically: false },
  document.getElementById("redoc"),
);
