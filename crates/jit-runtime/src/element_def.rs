//! One element's definition: what its `e.json` (plus its config file) says, after loading,
//! and the declaration types inside it (functions, arguments, data types, access, load time).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::name::FullName;
use crate::secret::{mask_all, mask_json};

/// One element's definition, immutable after loading and shared as `Arc<ElementDef>`.
///
/// Debug masks secret values: keys marked secret anywhere on the element's chain, or every
/// value of `extra`/`config` when the chain is not known (a shadowed definition).
pub struct ElementDef {
    /// The element's fullName, from its folder path.
    pub full_name: FullName,
    /// The `type` it names; `None` for a Meta.
    pub type_name: Option<FullName>,
    /// `title` from e.json.
    pub title: Option<String>,
    /// The layer it comes from: `"framework"`, an extended app's name, or the app's name.
    pub layer: String,
    /// The e.json path as shown in errors (embedded: `<framework>/pays/Meta/e.json`).
    pub source: PathBuf,
    /// The element's folder on disk; `None` for the embedded framework layer.
    pub dir: Option<PathBuf>,
    /// `backendBundleEntry`.
    pub backend_bundle_entry: Option<String>,
    /// `frontBundleEntry`.
    pub front_bundle_entry: Option<String>,
    /// `backendLoadTime`; `None` means on demand.
    pub backend_load_time: Option<BackendLoadTime>,
    /// `accessModifier`; public when unset.
    pub access_modifier: AccessModifier,
    /// `cacheLevel`; `None` when unset (the nearest on the chain decides, see
    /// [`crate::Chain::cache_level`]).
    pub cache_level: Option<CacheLevel>,
    /// `functionList`: functions callable through [`crate::App::call`] and served over HTTP.
    pub function_list: Vec<FunctionDecl>,
    /// `secretKeys`: setting keys this element marks secret; inherited down the chain.
    pub secret_keys: Vec<String>,
    /// Keys of e.json the runtime does not know (`mchId`, `icon`, `description`, ...).
    pub extra: Map<String, Value>,
    /// The config file (`frontBundleEntry` when it names a `.json` file, else `<name>.json`,
    /// else `config.json`) with `{{VAR}}` placeholders filled; `None` when there is none.
    pub config: Option<Value>,
    /// The lower-layer definition with the same fullName that this one overrides.
    pub overrides: Option<Arc<ElementDef>>,
    /// Secret keys of the whole chain, known once the chain is resolved.
    pub(crate) chain_secret_keys: OnceLock<Arc<[String]>>,
}

impl ElementDef {
    /// Whether this is a Meta (no `type`).
    pub fn is_meta(&self) -> bool {
        self.type_name.is_none()
    }

    /// The function declared by this element itself (not its chain) under `name`.
    pub fn function(&self, name: &str) -> Option<&FunctionDecl> {
        self.function_list.iter().find(|f| f.name == name)
    }

    /// Whether `other` says exactly what this definition says: every key of e.json, the
    /// config file (placeholders filled), where it lives and what it overrides. A reload
    /// keeps an element's built instance only when its whole chain is the same.
    pub fn same_definition(&self, other: &ElementDef) -> bool {
        let overrides_same = match (&self.overrides, &other.overrides) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.same_definition(b),
            _ => false,
        };
        self.full_name == other.full_name
            && self.type_name == other.type_name
            && self.title == other.title
            && self.layer == other.layer
            && self.source == other.source
            && self.dir == other.dir
            && self.backend_bundle_entry == other.backend_bundle_entry
            && self.front_bundle_entry == other.front_bundle_entry
            && self.backend_load_time == other.backend_load_time
            && self.access_modifier == other.access_modifier
            && self.cache_level == other.cache_level
            && self.function_list == other.function_list
            && self.secret_keys == other.secret_keys
            && self.extra == other.extra
            && self.config == other.config
            && overrides_same
    }

    /// Secret keys known for this definition: the whole chain's once resolved, else its own.
    pub fn effective_secret_keys(&self) -> &[String] {
        match self.chain_secret_keys.get() {
            Some(keys) => keys,
            None => &self.secret_keys,
        }
    }

    /// This definition as JSON in e.json's shape (plus `layer`, `source`, `config`),
    /// with the values of every key in `secret_keys` replaced by `******` at any depth.
    pub fn to_json_masked<S: AsRef<str>>(&self, secret_keys: &[S]) -> Value {
        let mut out = Map::new();
        out.insert("fullName".into(), Value::String(self.full_name.to_string()));
        out.insert(
            "type".into(),
            self.type_name
                .as_ref()
                .map_or(Value::Null, |t| Value::String(t.to_string())),
        );
        if let Some(title) = &self.title {
            out.insert("title".into(), Value::String(title.clone()));
        }
        out.insert("layer".into(), Value::String(self.layer.clone()));
        out.insert(
            "source".into(),
            Value::String(self.source.display().to_string()),
        );
        if let Some(entry) = &self.backend_bundle_entry {
            out.insert("backendBundleEntry".into(), Value::String(entry.clone()));
        }
        if let Some(entry) = &self.front_bundle_entry {
            out.insert("frontBundleEntry".into(), Value::String(entry.clone()));
        }
        if let Some(time) = self.backend_load_time {
            out.insert(
                "backendLoadTime".into(),
                Value::String(time.as_str().into()),
            );
        }
        out.insert(
            "accessModifier".into(),
            Value::String(self.access_modifier.as_str().into()),
        );
        if let Some(level) = self.cache_level {
            out.insert("cacheLevel".into(), Value::from(level.as_number()));
        }
        if !self.function_list.is_empty() {
            out.insert(
                "functionList".into(),
                Value::Array(
                    self.function_list
                        .iter()
                        .map(FunctionDecl::to_json)
                        .collect(),
                ),
            );
        }
        if !self.secret_keys.is_empty() {
            out.insert(
                "secretKeys".into(),
                Value::Array(
                    self.secret_keys
                        .iter()
                        .map(|k| Value::String(k.clone()))
                        .collect(),
                ),
            );
        }
        for (key, value) in &self.extra {
            let shown = if secret_keys.iter().any(|s| s.as_ref() == key) {
                Value::String(crate::secret::MASK.into())
            } else {
                mask_json(value, secret_keys)
            };
            out.insert(key.clone(), shown);
        }
        if let Some(config) = &self.config {
            out.insert("config".into(), mask_json(config, secret_keys));
        }
        if let Some(overridden) = &self.overrides {
            out.insert(
                "overrides".into(),
                Value::String(overridden.source.display().to_string()),
            );
        }
        Value::Object(out)
    }
}

impl fmt::Debug for ElementDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (extra, config) = match self.chain_secret_keys.get() {
            Some(keys) => (
                mask_json(&Value::Object(self.extra.clone()), keys),
                self.config.as_ref().map(|c| mask_json(c, keys)),
            ),
            None => (
                mask_all(&Value::Object(self.extra.clone())),
                self.config.as_ref().map(mask_all),
            ),
        };
        f.debug_struct("ElementDef")
            .field("full_name", &self.full_name)
            .field("type_name", &self.type_name)
            .field("title", &self.title)
            .field("layer", &self.layer)
            .field("source", &self.source)
            .field("dir", &self.dir)
            .field("backend_bundle_entry", &self.backend_bundle_entry)
            .field("front_bundle_entry", &self.front_bundle_entry)
            .field("backend_load_time", &self.backend_load_time)
            .field("access_modifier", &self.access_modifier)
            .field("cache_level", &self.cache_level)
            .field("function_list", &self.function_list)
            .field("secret_keys", &self.secret_keys)
            .field("extra", &extra)
            .field("config", &config)
            .field(
                "overrides",
                &self
                    .overrides
                    .as_ref()
                    .map(|o| o.source.display().to_string()),
            )
            .finish()
    }
}

/// `backendLoadTime`: when the runtime builds the element without being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum BackendLoadTime {
    /// Built by [`crate::AppBuilder::build`], before the app serves anything.
    #[serde(rename = "afterAppInit")]
    AfterAppInit,
    /// Built before the host handles its first request. The runtime treats it like
    /// on-demand; hosts may call [`crate::App::build_elements`] with it before serving.
    #[serde(rename = "beforeHandleRequest")]
    BeforeHandleRequest,
}

impl BackendLoadTime {
    /// The e.json spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AfterAppInit => "afterAppInit",
            Self::BeforeHandleRequest => "beforeHandleRequest",
        }
    }
}

/// `cacheLevel`: how long a built element is kept (JitAi's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CacheLevel {
    /// `0`: built once and kept for the life of the app (the default).
    #[default]
    Process,
    /// `1`: built afresh for each request from the cached definition, and shared by every
    /// call within that request (the host's [`crate::CallContext`] carries it).
    Request,
}

impl CacheLevel {
    /// The e.json number.
    pub fn as_number(self) -> u8 {
        match self {
            Self::Process => 0,
            Self::Request => 1,
        }
    }
}

impl<'de> Deserialize<'de> for CacheLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match value.as_u64() {
            Some(0) => Ok(Self::Process),
            Some(1) => Ok(Self::Request),
            _ => Err(serde::de::Error::custom(format!(
                "cacheLevel must be 0 (one instance for the process) or 1 (a fresh instance per request), found {}",
                crate::log_safe::log_safe(&value.to_string())
            ))),
        }
    }
}

/// `accessModifier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum AccessModifier {
    /// Visible to higher layers and overridable (the default).
    #[default]
    #[serde(rename = "public")]
    Public,
    /// Visible to higher layers; a higher layer defining the same fullName is an error.
    #[serde(rename = "protected")]
    Protected,
    /// Invisible to higher layers: they cannot use it as a `type`, and a higher-layer
    /// element with the same fullName is a new, unrelated element.
    #[serde(rename = "private")]
    Private,
}

impl AccessModifier {
    /// The e.json spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Protected => "protected",
            Self::Private => "private",
        }
    }
}

/// One entry of `functionList`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDecl {
    /// `name`: the function name used in calls and HTTP paths.
    pub name: String,
    /// `title`.
    pub title: Option<String>,
    /// `args`, in declaration order.
    pub args: Vec<ArgDecl>,
    /// `returnType`, as written (not checked by the runtime).
    pub return_type: Option<String>,
    /// `loginRequired`; true when unset. A call without a principal is refused.
    pub login_required: bool,
    /// `bodyFormat`: how the function takes an HTTP request; JSON when unset.
    pub body_format: BodyFormat,
    /// Other keys of the entry.
    pub extra: Map<String, Value>,
}

/// `bodyFormat` of a `functionList` entry: how a host serving the function over HTTP
/// hands it the request and answers with its result. The runtime checks the declaration
/// (one argument for the raw formats); the host does the serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum BodyFormat {
    /// A JSON object of arguments in, the JSON result out (the default).
    #[default]
    #[serde(rename = "json")]
    Json,
    /// The raw body as the function's one argument, its string result answered as
    /// `application/xml` (WeChat Pay V2's callbacks).
    #[serde(rename = "xml")]
    Xml,
    /// The request as the function's one argument, `{"method", "headers", "body"}`, and
    /// the answer's status and body from the result, `{"status", "body"}` (callbacks that
    /// are verified over their headers and answered by status, as WeChat Pay V3's are).
    #[serde(rename = "http")]
    Http,
}

impl BodyFormat {
    /// The e.json spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Xml => "xml",
            Self::Http => "http",
        }
    }

    /// Whether the function takes the request whole, as its one argument, rather than
    /// arguments from a JSON object.
    pub fn takes_raw_request(self) -> bool {
        self != Self::Json
    }
}

impl FunctionDecl {
    /// The declaration back in e.json's shape.
    pub fn to_json(&self) -> Value {
        let mut out = named_entry(&self.name, self.title.as_deref());
        out.insert(
            "args".into(),
            Value::Array(
                self.args
                    .iter()
                    .map(|a| {
                        let mut arg = named_entry(&a.name, a.title.as_deref());
                        arg.insert(
                            "dataType".into(),
                            Value::String(a.data_type.as_str().into()),
                        );
                        arg.insert("required".into(), Value::Bool(a.required));
                        Value::Object(arg)
                    })
                    .collect(),
            ),
        );
        if let Some(ret) = &self.return_type {
            out.insert("returnType".into(), Value::String(ret.clone()));
        }
        out.insert("loginRequired".into(), Value::Bool(self.login_required));
        if self.body_format != BodyFormat::Json {
            out.insert(
                "bodyFormat".into(),
                Value::String(self.body_format.as_str().into()),
            );
        }
        for (k, v) in &self.extra {
            out.insert(k.clone(), v.clone());
        }
        Value::Object(out)
    }
}

/// The start of a function or argument entry in e.json's shape: `name`, and `title` when
/// there is one.
fn named_entry(name: &str, title: Option<&str>) -> Map<String, Value> {
    let mut entry = Map::new();
    entry.insert("name".into(), Value::String(name.to_owned()));
    if let Some(title) = title {
        entry.insert("title".into(), Value::String(title.to_owned()));
    }
    entry
}

/// One argument of a [`FunctionDecl`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgDecl {
    /// `name`.
    pub name: String,
    /// `title`.
    #[serde(default)]
    pub title: Option<String>,
    /// `dataType`.
    pub data_type: DataType,
    /// `required`; true when unset.
    #[serde(default = "default_true")]
    pub required: bool,
}

pub(crate) fn default_true() -> bool {
    true
}

/// An argument's `dataType`, by its JitAi name. Unknown names are a load error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `Stext`: short text, a JSON string.
    Stext,
    /// `Ltext`: long text, a JSON string.
    Ltext,
    /// `Numeric`: a JSON number, or a decimal string (`"12.34"`, `"-5"`: digits with an
    /// optional sign and fraction) for a value a JSON number cannot carry exactly
    /// (see [`crate::parse_arguments`]).
    Numeric,
    /// `Integer`: a JSON integer (fits i64 or u64).
    Integer,
    /// `Boolean`: `true` / `false`.
    Boolean,
    /// `JSON`: any JSON value.
    Json,
    /// `List`: a JSON array.
    List,
    /// `Date`: a string `YYYY-MM-DD`.
    Date,
    /// `Datetime`: a string `YYYY-MM-DD HH:MM:SS` (a `T` separator is accepted too).
    Datetime,
    /// `Any`: any JSON value.
    Any,
}

impl DataType {
    /// Every data type, for error messages.
    pub const ALL: [DataType; 10] = [
        Self::Stext,
        Self::Ltext,
        Self::Numeric,
        Self::Integer,
        Self::Boolean,
        Self::Json,
        Self::List,
        Self::Date,
        Self::Datetime,
        Self::Any,
    ];

    /// The JitAi name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stext => "Stext",
            Self::Ltext => "Ltext",
            Self::Numeric => "Numeric",
            Self::Integer => "Integer",
            Self::Boolean => "Boolean",
            Self::Json => "JSON",
            Self::List => "List",
            Self::Date => "Date",
            Self::Datetime => "Datetime",
            Self::Any => "Any",
        }
    }

    /// Parses a JitAi name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether a (non-null) JSON value is acceptable for this type.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            Self::Stext | Self::Ltext => value.is_string(),
            Self::Numeric => value.is_number() || value.as_str().is_some_and(is_decimal),
            Self::Integer => value.is_i64() || value.is_u64(),
            Self::Boolean => value.is_boolean(),
            Self::List => value.is_array(),
            Self::Date => value.as_str().is_some_and(is_date),
            Self::Datetime => value.as_str().is_some_and(is_datetime),
            Self::Json | Self::Any => true,
        }
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A plain decimal number: an optional `-`, digits, and optionally `.` and digits.
fn is_decimal(s: &str) -> bool {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    match unsigned.split_once('.') {
        Some((integer, fraction)) => digits(integer) && digits(fraction),
        None => digits(unsigned),
    }
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 && digits(y) && digits(m) && digits(d))
}

fn is_datetime(s: &str) -> bool {
    let Some((date, time)) = s.split_once([' ', 'T']) else {
        return false;
    };
    let parts: Vec<&str> = time.split(':').collect();
    is_date(date)
        && matches!(parts.as_slice(), [h, m, sec] if h.len() == 2 && m.len() == 2 && sec.len() == 2 && digits(h) && digits(m) && digits(sec))
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DataType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        DataType::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = DataType::ALL.iter().map(|t| t.as_str()).collect();
            serde::de::Error::custom(format!(
                "unknown dataType `{name}` (expected one of {})",
                known.join(", ")
            ))
        })
    }
}
