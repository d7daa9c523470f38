//! The app's API description: an OpenAPI 3.1 document (`GET /api/{org}/{app}/openapi.json`,
//! `jit openapi`) and a readable page of the same (`GET /api/{org}/{app}/docs`).
//!
//! Both are generated from the loaded definitions on every request ([`ApiDescription::of`]),
//! so they describe exactly what the router serves: one `POST` per function of every
//! element that can be called (an instance: not a Meta, not an element other elements use
//! as their type — their functions are served on their instances), at the URL
//! [`function_url`] builds, with the arguments' `dataType`s as JSON Schema, `loginRequired`
//! as bearer security, `bodyFormat: xml` as a raw XML body, `bodyFormat: http` as a
//! callback that chooses its answer's status, and every error code the
//! runtime and the app's element families answer ([`error_codes`]).
//!
//! Neither needs a token: they show names, titles and types from the `e.json` files,
//! never a setting or a secret.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jit_runtime::{
    BodyFormat, CallErrorKind, Chain, DataType, Definitions, ElementDef, FunctionDecl,
};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::{Map, Value, json};

use super::body::body_argument;
use super::error::status_for_call_error;
use super::routes::{HEALTH_ROUTE, api_base, function_url};
use super::state::ServerState;

/// The security scheme's name in `components.securitySchemes`.
const BEARER: &str = "bearerAuth";

/// One function as served.
struct Operation<'d> {
    /// The URL path (from [`function_url`]).
    path: String,
    element: &'d ElementDef,
    function: &'d FunctionDecl,
    format: BodyFormat,
}

/// A stable error code: what a client reads in `error.code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorCode {
    pub(crate) code: &'static str,
    /// Its category (the runtime's [`CallErrorKind`]), which decides the HTTP status.
    pub(crate) kind: CallErrorKind,
    pub(crate) meaning: &'static str,
    /// Who answers it: `runtime`, or the element family (`pays`).
    pub(crate) source: &'static str,
}

impl ErrorCode {
    fn status(&self) -> StatusCode {
        status_for_call_error(self.kind)
    }
}

/// What a category means to a caller (the runtime documents each on [`CallErrorKind`]).
fn kind_meaning(kind: CallErrorKind) -> &'static str {
    match kind {
        CallErrorKind::NotFound => "no such element, or no such thing the element looks up",
        CallErrorKind::FunctionNotFound => "the element declares no such function",
        CallErrorKind::BadArguments => {
            "arguments missing, unknown, of the wrong type or out of range; the message names them"
        }
        CallErrorKind::Unauthorized => "the function requires a logged-in caller",
        CallErrorKind::Conflict => {
            "understood, but it conflicts with the current state or a rule of the element"
        }
        CallErrorKind::Upstream => "a third party (WeChat Pay) failed or refused",
        CallErrorKind::Internal => {
            "the server could not do this; the server log has the details for the request id"
        }
    }
}

/// Every error code a caller of this app can read: each category's own code, the
/// runtime's `INVALID_JSON`, and the specific codes of each element family the app uses
/// (listed where the family defines them: `jit_pays::error::SPECIFIC_CODES`). An element
/// of a plugin may answer codes of its own besides.
pub(crate) fn error_codes(definitions: &Definitions) -> Vec<ErrorCode> {
    let mut codes: Vec<ErrorCode> = CallErrorKind::ALL
        .into_iter()
        .map(|kind| ErrorCode {
            code: kind.code(),
            kind,
            meaning: kind_meaning(kind),
            source: "runtime",
        })
        .collect();
    codes.push(ErrorCode {
        code: jit_runtime::INVALID_JSON,
        kind: CallErrorKind::BadArguments,
        meaning: "the body is not JSON (or not UTF-8)",
        source: "runtime",
    });
    let uses_pays = definitions
        .iter()
        .any(|chain| chain.contains(jit_pays::PAYS_META));
    if uses_pays {
        codes.extend(
            jit_pays::error::SPECIFIC_CODES
                .iter()
                .map(|specific| ErrorCode {
                    code: specific.code,
                    kind: specific.kind,
                    meaning: specific.meaning,
                    source: "pays",
                }),
        );
    }
    codes
}

/// Whether an element's functions are served: it is an instance
/// ([`Definitions::is_instance`], the rule `jit check` counts instances by). Calling a Meta
/// or a Type builds no usable element.
fn is_served(definitions: &Definitions, chain: &Chain) -> bool {
    definitions.is_instance(chain)
}

/// Whether a function name can be reached at a URL path and written as an OpenAPI path
/// (no `/`, no `{}` template braces, no query or fragment marks, nothing invisible).
fn routable(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| {
            matches!(c, '/' | '{' | '}' | '?' | '#' | '%') || c.is_whitespace() || c.is_control()
        })
}

/// The app's API, as the router serves it.
pub(crate) struct ApiDescription<'d> {
    org: &'d str,
    app: &'d str,
    /// `servers[0]` when known (`[server] public_base_url`); otherwise the document's
    /// own host (OpenAPI's default).
    server_url: Option<&'d str>,
    operations: Vec<Operation<'d>>,
    /// Functions no URL can reach (their names hold `/`, `{`...): named, not described.
    unreachable: Vec<String>,
    codes: Vec<ErrorCode>,
}

impl<'d> ApiDescription<'d> {
    /// The API of the app `definitions` holds, served at `public_base_url` when given.
    pub(crate) fn of(definitions: &'d Definitions, public_base_url: Option<&'d str>) -> Self {
        let settings = definitions.settings();
        // Paths from the host's root: `servers` (or the document's host) says where.
        let base = api_base("", &settings.org, &settings.name);
        let mut operations = Vec::new();
        let mut unreachable = Vec::new();
        for chain in definitions
            .iter()
            .filter(|chain| is_served(definitions, chain))
        {
            let element = chain.element();
            for function in chain.functions() {
                if !routable(&function.name) {
                    unreachable.push(format!("{}.{}", element.full_name, function.name));
                    continue;
                }
                operations.push(Operation {
                    path: function_url(&base, element.full_name.as_str(), &function.name),
                    element,
                    function,
                    format: function.body_format,
                });
            }
        }
        Self {
            org: &settings.org,
            app: &settings.name,
            server_url: public_base_url.map(|url| url.trim_end_matches('/')),
            operations,
            unreachable,
            codes: error_codes(definitions),
        }
    }

    fn title(&self) -> String {
        format!("{}/{}", self.org, self.app)
    }

    /// The OpenAPI 3.1 document.
    pub(crate) fn to_openapi(&self) -> Value {
        let mut paths = Map::new();
        for operation in &self.operations {
            paths.insert(
                operation.path.clone(),
                json!({"post": self.operation_object(operation)}),
            );
        }
        paths.insert(HEALTH_ROUTE.to_owned(), health_path());

        let mut tags: Vec<Value> = Vec::new();
        for operation in &self.operations {
            let name = operation.element.full_name.as_str();
            if tags.iter().any(|tag| tag["name"] == name) {
                continue;
            }
            let mut tag = json!({"name": name});
            if let Some(text) = element_text(operation.element) {
                tag["description"] = Value::String(text);
            }
            tags.push(tag);
        }

        let mut description = format!(
            "The element functions of app `{}`, generated by jit {} from its elements' \
             `functionList`s. Every function is a `POST` of a JSON object of named arguments \
             (an empty body means none) answered with the function's JSON result, except \
             functions with `bodyFormat: xml`, which take the raw XML body and answer XML, and \
             functions with `bodyFormat: http` (callbacks), which take the request and choose \
             the answer's status. \
             Errors are `{{\"error\": {{\"code\", \"message\"}}}}`: match on `code` \
             (see the `ErrorCode` schema), never on the message.",
            self.title(),
            env!("CARGO_PKG_VERSION"),
        );
        if !self.unreachable.is_empty() {
            description.push_str(&format!(
                "\n\nNot reachable over HTTP (their names cannot be a URL segment): {}.",
                self.unreachable.join(", ")
            ));
        }
        let mut document = json!({
            "openapi": "3.1.0",
            "info": {
                "title": format!("{} element functions", self.title()),
                "version": env!("CARGO_PKG_VERSION"),
                "description": description,
            },
            "tags": tags,
            "paths": paths,
            "components": {
                "securitySchemes": {
                    BEARER: {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "One of the app's `[auth] tokens`, as `Authorization: Bearer <token>`.",
                    }
                },
                "schemas": {
                    "Error": error_schema(),
                    "ErrorCode": self.error_code_schema(),
                    "WeChatReply": {
                        "type": "string",
                        "description": "WeChat Pay's XML reply: `<xml><return_code>SUCCESS|FAIL</return_code><return_msg>…</return_msg></xml>`; a failure's `return_msg` is `CODE: message` with a code of `ErrorCode`.",
                    },
                    "Health": health_schema(),
                },
                "responses": self.error_responses(),
            },
        });
        if let Some(url) = self.server_url {
            document["servers"] = json!([{"url": url}]);
        }
        document
    }

    /// The statuses an operation can answer besides 200, each with the response's name in
    /// `components.responses`.
    fn error_statuses(&self, operation: &Operation<'_>) -> Vec<StatusCode> {
        let mut statuses: Vec<StatusCode> = self.codes.iter().map(ErrorCode::status).collect();
        statuses.push(StatusCode::PAYLOAD_TOO_LARGE);
        statuses.push(StatusCode::GATEWAY_TIMEOUT);
        if operation.format == BodyFormat::Json {
            statuses.push(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        // The runtime's category exists for every function; the host answers it only
        // where a login is required.
        if !operation.function.login_required {
            statuses.retain(|status| *status != StatusCode::UNAUTHORIZED);
        }
        statuses.sort();
        statuses.dedup();
        statuses
    }

    fn operation_object(&self, operation: &Operation<'_>) -> Value {
        let function = operation.function;
        let element = operation.element;
        let mut description = format!(
            "Function `{}` of element `{}`",
            function.name, element.full_name
        );
        if let Some(title) = &element.title {
            description.push_str(&format!(" ({title})"));
        }
        description.push('.');
        match operation.format {
            BodyFormat::Xml => description.push_str(&format!(
                " The raw request body is its argument `{}`.",
                body_argument(function).unwrap_or("(none)")
            )),
            BodyFormat::Http => description.push_str(&format!(
                " The request (method, headers, raw body) is its argument `{}`; it chooses \
                 the answer's status and JSON body.",
                body_argument(function).unwrap_or("(none)")
            )),
            BodyFormat::Json => {}
        }
        let mut responses = Map::new();
        let (media, ok_schema) = match operation.format {
            BodyFormat::Json => (
                "application/json",
                return_schema(function.return_type.as_deref()),
            ),
            BodyFormat::Xml => (
                "application/xml",
                json!({"$ref": "#/components/schemas/WeChatReply"}),
            ),
            // The function picks the status: 200 or 204 to accept, 4xx/5xx to refuse.
            BodyFormat::Http => ("application/json", json!({})),
        };
        responses.insert(
            "200".into(),
            json!({
                "description": match operation.format {
                    BodyFormat::Http => "The function's answer (it chooses the status and the JSON body, if any).",
                    _ => "The function's result.",
                },
                "content": {media: {"schema": ok_schema}},
            }),
        );
        for status in self.error_statuses(operation) {
            responses.insert(
                status.as_u16().to_string(),
                json!({"$ref": format!("#/components/responses/{}", response_name(status, operation.format))}),
            );
        }
        let mut object = json!({
            "operationId": format!("{}.{}", element.full_name, function.name),
            "summary": function.title.as_deref().unwrap_or(&function.name),
            "description": description,
            "tags": [element.full_name.as_str()],
            "requestBody": request_body(operation),
            "responses": responses,
        });
        // An explicit empty list says "no login" even if a global requirement is added.
        object["security"] = if function.login_required {
            json!([{BEARER: []}])
        } else {
            json!([])
        };
        object
    }

    /// `components.responses`: one per error status, in JSON and in WeChat's XML.
    fn error_responses(&self) -> Value {
        let mut statuses: Vec<StatusCode> = self.codes.iter().map(ErrorCode::status).collect();
        statuses.extend([
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::GATEWAY_TIMEOUT,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ]);
        statuses.sort();
        statuses.dedup();
        let mut responses = Map::new();
        for status in statuses {
            let description = self.status_description(status);
            responses.insert(
                response_name(status, BodyFormat::Json),
                json!({
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }),
            );
            if status != StatusCode::UNSUPPORTED_MEDIA_TYPE {
                responses.insert(
                    response_name(status, BodyFormat::Xml),
                    json!({
                        "description": description,
                        "content": {"application/xml": {"schema": {"$ref": "#/components/schemas/WeChatReply"}}},
                    }),
                );
            }
        }
        Value::Object(responses)
    }

    /// What an error status means, with the codes answered with it.
    fn status_description(&self, status: StatusCode) -> String {
        let mut text = match status {
            StatusCode::BAD_REQUEST => {
                "The request is not what the function declares (or its body cannot be read)."
            }
            StatusCode::UNAUTHORIZED => {
                "The function needs a login: no `Authorization: Bearer` token, or one the app does not accept."
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                "The body is larger than the server's limit (`[server] json_body_limit` / `xml_body_limit`)."
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "A JSON function's body is sent with a `Content-Type` other than `application/json`."
            }
            StatusCode::GATEWAY_TIMEOUT => "The call did not finish within the request timeout.",
            StatusCode::NOT_FOUND => "Nothing of this name.",
            StatusCode::CONFLICT => "The call conflicts with the current state.",
            StatusCode::BAD_GATEWAY => "A third party failed.",
            _ => "The server failed.",
        }
        .to_owned();
        let codes: Vec<String> = self
            .codes
            .iter()
            .filter(|code| code.status() == status)
            .map(|code| format!("`{}` ({})", code.code, code.meaning))
            .collect();
        if !codes.is_empty() {
            text.push_str(" Codes: ");
            text.push_str(&codes.join("; "));
            text.push('.');
        }
        text
    }

    fn error_code_schema(&self) -> Value {
        let mut table = String::from(
            "A stable, machine-readable code. Known codes (an element of a plugin may answer \
             codes of its own):\n\n| code | HTTP status | category | from | meaning |\n|---|---|---|---|---|\n",
        );
        for code in &self.codes {
            table.push_str(&format!(
                "| `{}` | {} | `{}` | {} | {} |\n",
                code.code,
                code.status().as_u16(),
                code.kind.code(),
                code.source,
                code.meaning
            ));
        }
        json!({
            "type": "string",
            "description": table,
            "examples": self.codes.iter().map(|code| code.code).collect::<Vec<_>>(),
            "x-jit-codes": self.codes.iter().map(|code| json!({
                "code": code.code,
                "status": code.status().as_u16(),
                "category": code.kind.code(),
                "from": code.source,
                "meaning": code.meaning,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The name of an error status's entry in `components.responses` (`NotFound`,
/// `NotFoundXml`).
fn response_name(status: StatusCode, format: BodyFormat) -> String {
    let reason: String = status
        .canonical_reason()
        .unwrap_or("Error")
        .split(|c: char| !c.is_ascii_alphanumeric())
        .collect();
    match format {
        BodyFormat::Json | BodyFormat::Http => reason,
        BodyFormat::Xml => format!("{reason}Xml"),
    }
}

/// The element's title and description, as one text.
fn element_text(element: &ElementDef) -> Option<String> {
    let description = element.extra.get("description").and_then(Value::as_str);
    match (element.title.as_deref(), description) {
        (Some(title), Some(description)) => Some(format!("{title}. {description}")),
        (Some(text), None) | (None, Some(text)) => Some(text.to_owned()),
        (None, None) => None,
    }
}

/// How a `dataType` travels in JSON: its JSON Schema and a short name for people. One
/// match over every data type the runtime knows, so a new one cannot be left out.
fn data_type_schema(data_type: DataType) -> (Value, &'static str) {
    const DECIMAL: &str = "^-?[0-9]+(\\.[0-9]+)?$";
    let (mut schema, shown) = match data_type {
        DataType::Stext => (json!({"type": "string"}), "string"),
        DataType::Ltext => (json!({"type": "string"}), "string (long text)"),
        DataType::Numeric => (
            json!({
                "type": ["number", "string"],
                "pattern": DECIMAL,
                "description": "A decimal: a JSON number, or a decimal string such as \"12.34\" \
                                 to keep it exact. Amounts of money are in yuan (0.01 is one fen).",
            }),
            "number or decimal string (amounts in yuan)",
        ),
        DataType::Integer => (json!({"type": "integer"}), "integer"),
        DataType::Boolean => (json!({"type": "boolean"}), "boolean"),
        DataType::Json => (
            json!({"description": "Any JSON value, usually an object."}),
            "JSON (any value, usually an object)",
        ),
        DataType::List => (json!({"type": "array"}), "array"),
        DataType::Date => (
            json!({"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
            "string YYYY-MM-DD",
        ),
        DataType::Datetime => (
            json!({
                "type": "string",
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}$",
            }),
            "string YYYY-MM-DD HH:MM:SS",
        ),
        DataType::Any => (json!({"description": "Any JSON value."}), "any JSON value"),
    };
    schema["x-jit-dataType"] = Value::String(data_type.as_str().to_owned());
    (schema, shown)
}

/// The schema of a function's result from its `returnType`, which the runtime does not
/// check: a `dataType` name maps like an argument's; anything else is described, not
/// dropped.
fn return_schema(return_type: Option<&str>) -> Value {
    match return_type {
        None => json!({"description": "No returnType is declared: any JSON value."}),
        Some(name) => match DataType::from_name(name) {
            Some(data_type) => data_type_schema(data_type).0,
            None => json!({
                "description": format!("returnType `{name}` (not a dataType): any JSON value."),
                "x-jit-returnType": name,
            }),
        },
    }
}

/// What a function's `returnType` shows on the docs page.
fn return_shown(return_type: Option<&str>) -> String {
    match return_type {
        None => "any JSON value (no returnType declared)".to_owned(),
        Some(name) => match DataType::from_name(name) {
            Some(data_type) => format!("{name}: {}", data_type_schema(data_type).1),
            None => format!("{name} (not a dataType: any JSON value)"),
        },
    }
}

fn request_body(operation: &Operation<'_>) -> Value {
    let function = operation.function;
    match operation.format {
        BodyFormat::Xml => json!({
            "required": true,
            "description": "The raw XML body, passed to the function as its argument.",
            "content": {"application/xml": {"schema": {"type": "string"}}},
        }),
        BodyFormat::Http => json!({
            "required": true,
            "description": "The raw body, passed to the function with the method and the \
                            headers (never Authorization or Cookie) as its argument.",
            "content": {"application/json": {"schema": {}}},
        }),
        BodyFormat::Json => {
            let mut properties = Map::new();
            for arg in &function.args {
                let (mut schema, _) = data_type_schema(arg.data_type);
                if let Some(title) = &arg.title {
                    schema["title"] = Value::String(title.clone());
                }
                properties.insert(arg.name.clone(), schema);
            }
            let required: Vec<&str> = function
                .args
                .iter()
                .filter(|arg| arg.required)
                .map(|arg| arg.name.as_str())
                .collect();
            let mut schema = json!({
                "type": "object",
                "properties": properties,
                "additionalProperties": false,
            });
            if !required.is_empty() {
                schema["required"] = json!(required);
            }
            json!({
                // With nothing required an empty body is a call without arguments.
                "required": !required.is_empty(),
                "content": {"application/json": {"schema": schema}},
            })
        }
    }
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"$ref": "#/components/schemas/ErrorCode"},
                    "message": {"type": "string", "description": "For people: what was wrong and where. Never match on it."},
                },
            },
        },
    })
}

fn health_schema() -> Value {
    json!({
        "type": "object",
        "required": ["status", "app", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "error"]},
            "app": {"type": "string", "description": "`org/app`"},
            "checks": {
                "type": "object",
                "description": "Each probe (database, gateway...) with its status and detail.",
                "additionalProperties": {"type": "object"},
            },
            "payments": {"type": "string", "description": "Present when the gateway is the simulator: no money moves."},
        },
    })
}

fn health_path() -> Value {
    let answer = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
        })
    };
    json!({
        "get": {
            "operationId": "healthz",
            "summary": "Health of the server and what it depends on",
            "security": [],
            "responses": {
                "200": answer("Every check passed."),
                "503": answer("A check failed; `checks` says which."),
            },
        }
    })
}

/// The docs page.
impl ApiDescription<'_> {
    /// A readable page of the same description: server-rendered, no script, no request
    /// to anywhere else. Its one inline style sheet carries `nonce`.
    pub(crate) fn to_html(&self, nonce: &str) -> Markup {
        let title = format!("{} API", self.title());
        let mut elements: Vec<&ElementDef> = Vec::new();
        for operation in &self.operations {
            if !elements
                .iter()
                .any(|e| e.full_name == operation.element.full_name)
            {
                elements.push(operation.element);
            }
        }
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) }
                    style nonce=(nonce) { (PreEscaped(DOCS_CSS)) }
                }
                body {
                    header {
                        h1 { (title) }
                        p {
                            "Element functions of app " code { (self.title()) } ", generated from its elements' "
                            code { "functionList" } "s. Machine-readable: "
                            a href="openapi.json" { "openapi.json" } " (OpenAPI 3.1)."
                        }
                        p {
                            "Each function is a " code { "POST" } " of a JSON object of named arguments "
                            "(an empty body means none), answered with its JSON result. Functions marked "
                            strong { "token" } " need " code { "Authorization: Bearer <token>" }
                            " with one of the app's " code { "[auth] tokens" } "."
                            @if let Some(url) = self.server_url {
                                " Paths are under " code { (url) } "."
                            }
                        }
                    }
                    nav {
                        h2 { "Elements" }
                        ul {
                            @for element in &elements {
                                li { a href={ "#" (element.full_name.as_str()) } { code { (element.full_name.as_str()) } }
                                    @if let Some(title) = &element.title { " — " (title) } }
                            }
                            li { a href="#errors" { "Errors" } }
                            li { a href="#health" { "Health" } }
                        }
                    }
                    main {
                        @for element in &elements {
                            section id=(element.full_name.as_str()) {
                                h2 { code { (element.full_name.as_str()) }
                                    @if let Some(title) = &element.title { " — " (title) } }
                                @if let Some(description) = element.extra.get("description").and_then(Value::as_str) {
                                    p { (description) }
                                }
                                @for operation in self.operations.iter().filter(|o| o.element.full_name == element.full_name) {
                                    (operation_html(operation))
                                }
                            }
                        }
                        section id="errors" {
                            h2 { "Errors" }
                            p {
                                "An error is " code { r#"{"error": {"code": "…", "message": "…"}}"# }
                                " (a WeChat XML reply for XML functions). Match on the code, never on the message."
                            }
                            table {
                                thead { tr { th { "code" } th { "HTTP" } th { "category" } th { "from" } th { "meaning" } } }
                                tbody {
                                    @for code in &self.codes {
                                        tr {
                                            td { code { (code.code) } }
                                            td { (code.status().as_u16()) }
                                            td { code { (code.kind.code()) } }
                                            td { (code.source) }
                                            td { (code.meaning) }
                                        }
                                    }
                                }
                            }
                        }
                        section id="health" {
                            h2 { "Health" }
                            p { code { "GET " (HEALTH_ROUTE) } ": 200 when every check passes, 503 otherwise; no token." }
                        }
                        @if !self.unreachable.is_empty() {
                            section {
                                h2 { "Not reachable over HTTP" }
                                p { "Their names cannot be a URL segment:" }
                                ul { @for name in &self.unreachable { li { code { (name) } } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn operation_html(operation: &Operation<'_>) -> Markup {
    let function = operation.function;
    let anchor = format!("{}.{}", operation.element.full_name, function.name);
    html! {
        article id=(anchor) {
            h3 {
                span.method { "POST" } " " code { (operation.path) }
                @if function.login_required { " " span.badge.token { "token" } }
                @else { " " span.badge { "no login" } }
                @if operation.format == BodyFormat::Xml { " " span.badge { "XML body" } }
                @if operation.format == BodyFormat::Http { " " span.badge { "HTTP callback" } }
            }
            @if let Some(title) = &function.title { p { (title) } }
            @match operation.format {
                BodyFormat::Xml => {
                    p { "The raw XML body is the argument "
                        code { (body_argument(function).unwrap_or("(none)")) }
                        "; the answer is WeChat's XML reply." }
                }
                BodyFormat::Http => {
                    p { "The request (method, headers, raw body) is the argument "
                        code { (body_argument(function).unwrap_or("(none)")) }
                        "; the function chooses the answer's status and JSON body." }
                }
                BodyFormat::Json => {
                    @if function.args.is_empty() {
                        p.none { "No arguments." }
                    } @else {
                        table {
                            thead { tr { th { "argument" } th { "dataType" } th { "JSON" } th { "required" } th { "meaning" } } }
                            tbody {
                                @for arg in &function.args {
                                    tr {
                                        td { code { (arg.name) } }
                                        td { code { (arg.data_type.as_str()) } }
                                        td { (data_type_schema(arg.data_type).1) }
                                        td { @if arg.required { "yes" } @else { "no" } }
                                        td { (arg.title.as_deref().unwrap_or("")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.returns { "Returns: " (return_shown(function.return_type.as_deref())) }
        }
    }
}

const DOCS_CSS: &str = "\
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem 1.5rem;color:#1b1b1b}\
h1{margin-bottom:.25rem}h2{border-bottom:1px solid #ddd;padding-bottom:.25rem;margin-top:2rem}\
h3{font-size:1rem;margin:1.5rem 0 .25rem}code{font-family:ui-monospace,monospace;font-size:.92em}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#f5f5f5}.method{background:#1f6feb;color:#fff;border-radius:3px;padding:0 .35rem;font-size:.85em}\
.badge{border:1px solid #999;border-radius:3px;padding:0 .35rem;font-size:.8em;font-weight:normal}\
.badge.token{border-color:#b35900;color:#b35900}.none,.returns{color:#555}article{margin-bottom:1rem}";

/// `GET /api/{org}/{app}/openapi.json`.
pub(crate) async fn document(
    State(state): State<Arc<ServerState>>,
    Path((org, app)): Path<(String, String)>,
) -> Response {
    if let Err(error) = super::dispatch::hosted_app(&state, &org, &app) {
        return error.into_response();
    }
    let app = state.app();
    let description =
        ApiDescription::of(app.definitions(), state.config.public_base_url.as_deref());
    Json(description.to_openapi()).into_response()
}

/// `GET /api/{org}/{app}/docs`.
pub(crate) async fn docs_page(
    State(state): State<Arc<ServerState>>,
    Path((org, app)): Path<(String, String)>,
) -> Response {
    if let Err(error) = super::dispatch::hosted_app(&state, &org, &app) {
        return error.into_response();
    }
    let app = state.app();
    let description =
        ApiDescription::of(app.definitions(), state.config.public_base_url.as_deref());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let page = description.to_html(&nonce).into_string();
    let mut response = (StatusCode::OK, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Nothing but this page's own style sheet: no script, no frame, no form, no other origin.
    let policy = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_that_are_one_url_segment_are_routable() {
        for name in ["create", "getPayUrl", "a_b", "x-y", "v1.2"] {
            assert!(routable(name), "{name}");
        }
        for name in ["", "a/b", "{id}", "a?b", "a#b", "a b", "a%2F", "a\u{7}"] {
            assert!(!routable(name), "{name:?}");
        }
    }

    #[test]
    fn every_data_type_has_a_schema_naming_it() {
        for data_type in DataType::ALL {
            let (schema, shown) = data_type_schema(data_type);
            assert_eq!(schema["x-jit-dataType"], data_type.as_str());
            assert!(!shown.is_empty());
        }
        assert_eq!(data_type_schema(DataType::Stext).0["type"], "string");
        assert_eq!(data_type_schema(DataType::Integer).0["type"], "integer");
        assert_eq!(
            data_type_schema(DataType::Numeric).0["type"],
            json!(["number", "string"])
        );
    }

    #[test]
    fn an_unknown_return_type_is_described_not_dropped() {
        let schema = return_schema(Some("Money"));
        assert_eq!(schema["x-jit-returnType"], "Money");
        assert!(schema["description"].as_str().unwrap().contains("Money"));
        assert_eq!(return_schema(Some("Integer"))["type"], "integer");
    }

    #[test]
    fn response_names_come_from_the_status() {
        assert_eq!(
            response_name(StatusCode::NOT_FOUND, BodyFormat::Json),
            "NotFound"
        );
        assert_eq!(
            response_name(StatusCode::PAYLOAD_TOO_LARGE, BodyFormat::Xml),
            "PayloadTooLargeXml"
        );
    }
}
