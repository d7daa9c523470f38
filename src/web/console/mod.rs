//! The merchant's order console under `/admin/{org}/{app}/`: a login with one of the app's
//! API tokens, a dashboard of today (Beijing day), order search, an order page (its pay log
//! row, WeChat record, every notify received, refunds, events and webhook deliveries) and
//! the actions check, cancel and refund, each behind a confirmation page.
//!
//! This module owns the console's routes ([`CONSOLE_ROUTE`], [`console_base`]) and its
//! handlers; [`session`] owns the login state (sessions, cookie, CSRF, attempt limit) and
//! [`views`] the pages. The data comes from the pays family's store
//! ([`jit_pays::PayStore`]) and the actions go through the elements exactly as the HTTP API
//! calls them ([`jit_runtime::App::call`]: `PaySvc.check`, `PaySvc.refund`, the owning pay
//! element's `cancel`), so the elements' rules apply.
//!
//! Access: pages without a live session redirect to the login page; actions (POST) without
//! one answer 401; every POST but the login carries the session's CSRF token, checked in
//! constant time (403 when wrong). The session cookie holds an opaque random id, never the
//! token.

pub(crate) mod session;
pub(crate) mod views;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Form, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Days, NaiveDate, Utc};
use jit_pays::db::outbox::{EventFilter, event_detail, list_events};
use jit_pays::db::store::OrderFilter;
use jit_pays::{PAY_SVC, PayStatus, PayStore};
use jit_runtime::{CallContext, LogAdmission, RefusalLogLimiter, log_safe};
use serde::Deserialize;
use serde_json::{Value, json};
use wechatpay_v2::Fen;

use self::session::{AttemptLimiter, Session, Sessions};
use self::views::{Dashboard, OrderPage, SearchPage};
use crate::server::state::ServerState;

/// The console's route prefix; every console route is under it.
pub(crate) const CONSOLE_ROUTE: &str = "/admin/{org}/{app}";

/// Orders shown per search page.
pub(crate) const PAGE_SIZE: u64 = 50;

/// Events (with their deliveries) shown on an order page.
const EVENTS_SHOWN: u64 = 100;

/// Waiting orders past their expiry listed on the dashboard.
const STUCK_SHOWN: u64 = 20;

/// Where the console of app `org/app` is: `/admin/{org}/{app}/` (also the cookie's path).
pub fn console_base(org: &str, app: &str) -> String {
    format!("/admin/{org}/{app}/")
}

/// The console's state: the server's, and its sessions.
pub(crate) struct Console {
    server: Arc<ServerState>,
    sessions: Sessions,
    attempts: AttemptLimiter,
    refusal_log: RefusalLogLimiter,
}

/// The console's routes, for the server's router.
pub(crate) fn router(server: Arc<ServerState>) -> Router<Arc<ServerState>> {
    let console = Arc::new(Console {
        server,
        sessions: Sessions::default(),
        attempts: AttemptLimiter::default(),
        refusal_log: RefusalLogLimiter::default(),
    });
    Router::new()
        .route(CONSOLE_ROUTE, get(to_base))
        .route(&format!("{CONSOLE_ROUTE}/"), get(dashboard))
        .route(
            &format!("{CONSOLE_ROUTE}/login"),
            get(login_page).post(login),
        )
        .route(&format!("{CONSOLE_ROUTE}/logout"), post(logout))
        .route(&format!("{CONSOLE_ROUTE}/orders"), get(search))
        .route(
            &format!("{CONSOLE_ROUTE}/orders/{{order_id}}"),
            get(order_page),
        )
        .route(
            &format!("{CONSOLE_ROUTE}/orders/{{order_id}}/confirm/{{action}}"),
            get(confirm_page),
        )
        .route(
            &format!("{CONSOLE_ROUTE}/orders/{{order_id}}/{{action}}"),
            post(run_action),
        )
        .with_state(console)
}

/// The actions an order page offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Ask WeChat (orderquery) and apply what it says: `PaySvc.check`.
    Check,
    /// Close the waiting order here and at WeChat: the owning element's `cancel`.
    Cancel,
    /// Refund all or part of a paid order: `PaySvc.refund`.
    Refund,
}

impl Action {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "check" => Some(Action::Check),
            "cancel" => Some(Action::Cancel),
            "refund" => Some(Action::Refund),
            _ => None,
        }
    }

    /// The path segment and the word shown.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Check => "check",
            Action::Cancel => "cancel",
            Action::Refund => "refund",
        }
    }
}

/// A request's view of the console: which app, where its pages are, who asks.
pub(crate) struct Place {
    /// `/admin/{org}/{app}/`.
    pub(crate) base: String,
    /// `org/app`, for titles.
    pub(crate) app: String,
}

impl Place {
    /// The URL of order `order_id`'s page (and, with a suffix, its actions).
    pub(crate) fn order_url(&self, order_id: &str) -> String {
        format!("{}orders/{}", self.base, path_segment(order_id))
    }
}

/// `text` as one URL path segment: every byte but the unreserved ones percent-encoded.
pub(crate) fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn peer_of(request_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

impl Console {
    /// The place of `org/app`, or the 404 page when this server hosts another app.
    fn place(&self, org: &str, app: &str) -> Result<Place, Box<Response>> {
        if org != self.server.org || app != self.server.app_name {
            return Err(Box::new(views::message_page(
                StatusCode::NOT_FOUND,
                "Not found",
                &format!(
                    "There is no console for app {org}/{app} here; this server hosts {}/{}.",
                    self.server.org, self.server.app_name
                ),
                None,
            )));
        }
        Ok(Place {
            base: console_base(org, app),
            app: format!("{org}/{app}"),
        })
    }

    /// Whether the cookie must be `Secure`: the shop's public URL is HTTPS.
    fn secure_cookie(&self) -> bool {
        self.server
            .config
            .public_base_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
    }

    /// The live session the request's cookie names.
    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = session::cookie_value(headers)?;
        let session = self.sessions.touch(&id)?;
        Some((id, session))
    }

    /// The pays family's store, or the page saying this host has none.
    fn store(&self) -> Result<Arc<PayStore>, Box<Response>> {
        self.server.app.service::<PayStore>().ok_or_else(|| {
            Box::new(views::message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "No payment family",
                "This host runs no pays family: there are no orders to show.",
                None,
            ))
        })
    }

    fn log_refused_login(&self, peer: Option<IpAddr>, why: &str) {
        let source = peer.map(|peer| peer.to_string());
        let source = source.as_deref().unwrap_or("unknown peer");
        if let LogAdmission::Log { suppressed } = self.refusal_log.admit(source) {
            tracing::warn!(
                peer = %log_safe(source),
                suppressed_since_last = suppressed,
                "console login refused: {why}"
            );
        }
    }
}

impl Console {
    /// What every page of a logged-in merchant starts with: the app's place (404 for
    /// another app), the session (else the redirect to the login page) and the store.
    fn open_page(
        &self,
        org: &str,
        app: &str,
        headers: &HeaderMap,
    ) -> Result<(Place, Session, Arc<PayStore>), Box<Response>> {
        let place = self.place(org, app)?;
        let session = page_session(self, &place, headers)?;
        let store = self.store()?;
        Ok((place, session, store))
    }
}

/// A page's guard: the session, or the redirect to the login page.
fn page_session(
    console: &Console,
    place: &Place,
    headers: &HeaderMap,
) -> Result<Session, Box<Response>> {
    console
        .session(headers)
        .map(|(_, session)| session)
        .ok_or_else(|| Box::new(Redirect::to(&format!("{}login", place.base)).into_response()))
}

/// An action's guard: the session (401 without one) whose CSRF token the form carries
/// (403 otherwise).
fn action_session(
    console: &Console,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(String, Session), Box<Response>> {
    let Some((id, session)) = console.session(headers) else {
        return Err(Box::new(views::message_page(
            StatusCode::UNAUTHORIZED,
            "Not logged in",
            "This action needs a console session: log in first.",
            None,
        )));
    };
    if !session.csrf_matches(csrf) {
        return Err(Box::new(views::message_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "The form's CSRF token is not this session's. Reload the page and try again.",
            None,
        )));
    }
    Ok((id, session))
}

async fn to_base(
    State(console): State<Arc<Console>>,
    Path((org, app)): Path<(String, String)>,
) -> Response {
    match console.place(&org, &app) {
        Ok(place) => Redirect::to(&place.base).into_response(),
        Err(page) => *page,
    }
}

async fn login_page(
    State(console): State<Arc<Console>>,
    Path((org, app)): Path<(String, String)>,
) -> Response {
    match console.place(&org, &app) {
        Ok(place) => views::login_page(&place, StatusCode::OK, None),
        Err(page) => *page,
    }
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(
    State(console): State<Arc<Console>>,
    Path((org, app)): Path<(String, String)>,
    request: Request,
) -> Response {
    let place = match console.place(&org, &app) {
        Ok(place) => place,
        Err(page) => return *page,
    };
    let peer = peer_of(request.extensions());
    if let Some(wait) = console.attempts.blocked_for(peer) {
        console.log_refused_login(peer, "too many wrong tokens");
        let mut page = views::login_page(
            &place,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many wrong tokens from your address; try again in {} s.",
                wait.as_secs().max(1)
            )),
        );
        page.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return page;
    }
    let Form(form) = match Form::<LoginForm>::from_request(request, &()).await {
        Ok(form) => form,
        Err(_) => {
            return views::login_page(
                &place,
                StatusCode::BAD_REQUEST,
                Some("The login form was not understood: it needs a `token` field."),
            );
        }
    };
    let tokens = &console.server.config.tokens;
    // An empty token set accepts nothing (TokenSet ignores empty tokens).
    if form.token.is_empty() || !tokens.accepts(form.token.trim()) {
        console.attempts.failed(peer);
        console.log_refused_login(peer, "not one of the app's API tokens");
        return views::login_page(
            &place,
            StatusCode::UNAUTHORIZED,
            Some("That is not one of this app's API tokens."),
        );
    }
    console.attempts.succeeded(peer);
    let (id, _) = console.sessions.create();
    let mut response = Redirect::to(&place.base).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&session::set_cookie(
            &id,
            &place.base,
            console.secure_cookie(),
        ))
        .expect("the cookie is ASCII"),
    );
    response
}

#[derive(Default, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(console): State<Arc<Console>>,
    Path((org, app)): Path<(String, String)>,
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    let form: CsrfForm = form_of(request).await;
    let place = match console.place(&org, &app) {
        Ok(place) => place,
        Err(page) => return *page,
    };
    let (id, _) = match action_session(&console, &headers, &form.csrf) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    console.sessions.end(&id);
    let mut response = Redirect::to(&format!("{}login", place.base)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&session::clear_cookie(&place.base, console.secure_cookie()))
            .expect("the cookie is ASCII"),
    );
    response
}

/// The form a POST carries; a body that is no such form reads as the empty one, whose
/// empty CSRF token the action's guard then refuses like a wrong one (after the session
/// check, so a request without a session is answered 401 whatever its body).
async fn form_of<T: serde::de::DeserializeOwned + Default>(request: Request) -> T {
    match Form::<T>::from_request(request, &()).await {
        Ok(Form(form)) => form,
        Err(_) => T::default(),
    }
}

/// Midnight (Beijing) starting `date`, as an instant.
fn beijing_midnight(date: NaiveDate) -> DateTime<Utc> {
    wechatpay_v2::time::from_beijing_local(date.and_time(chrono::NaiveTime::MIN))
}

async fn dashboard(
    State(console): State<Arc<Console>>,
    Path((org, app)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (place, session, store) = match console.open_page(&org, &app, &headers) {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let now = Utc::now();
    let today = wechatpay_v2::time::beijing_date(now);
    let day_start = beijing_midnight(today);
    let day_end = beijing_midnight(today + Days::new(1));
    let paid_today = OrderFilter {
        status: Some(PayStatus::Success),
        paid_from: Some(day_start),
        paid_to: Some(day_end),
        ..OrderFilter::default()
    };
    let waiting = OrderFilter {
        status: Some(PayStatus::Wait),
        ..OrderFilter::default()
    };
    let stuck = OrderFilter {
        status: Some(PayStatus::Wait),
        expires_before: Some(now),
        ..OrderFilter::default()
    };
    let gathered = async {
        Ok::<_, jit_pays::db::store::StoreError>(Dashboard {
            today,
            paid_count: store.count_orders(&paid_today).await?,
            paid_sum: Fen::new(store.sum_amount_fen(&paid_today).await?),
            waiting: store.count_orders(&waiting).await?,
            stuck_count: store.count_orders(&stuck).await?,
            stuck: store.list_orders(&stuck, 0, STUCK_SHOWN).await?,
            refusals: store.notify_refusals_since(day_start).await?,
            notify_log_dropped: store.notify_log().stats().dropped,
        })
    }
    .await;
    match gathered {
        Ok(dashboard) => views::dashboard_page(&place, &session, &dashboard),
        Err(error) => store_failed(&error),
    }
}

fn store_failed(error: &dyn std::fmt::Display) -> Response {
    // The store's error may name the database: the log gets it, escaped; the page does not.
    tracing::error!(error = %log_safe(&error.to_string()), "console: the database failed");
    views::message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Database error",
        "The database did not answer; see the server log.",
        None,
    )
}

/// The search form's fields, as typed.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    /// Order id, or its beginning.
    #[serde(default)]
    pub(crate) id: String,
    /// `wait`, `success`, `close`, `timeout` or empty.
    #[serde(default)]
    pub(crate) status: String,
    /// Created on or after this Beijing day (`YYYY-MM-DD`).
    #[serde(default)]
    pub(crate) from: String,
    /// Created on or before this Beijing day (`YYYY-MM-DD`).
    #[serde(default)]
    pub(crate) to: String,
    /// Amount at least, in yuan.
    #[serde(default)]
    pub(crate) min: String,
    /// Amount at most, in yuan.
    #[serde(default)]
    pub(crate) max: String,
    /// 1-based page.
    #[serde(default)]
    pub(crate) page: String,
}

impl SearchQuery {
    /// The filter and page these fields ask for, or what is wrong with which field.
    fn filter(&self) -> Result<(OrderFilter, u64), String> {
        let mut filter = OrderFilter::default();
        let id = self.id.trim();
        if !id.is_empty() {
            filter.order_id_prefix = Some(id.to_owned());
        }
        match self.status.trim() {
            "" => {}
            text => {
                filter.status = Some(PayStatus::parse(text).ok_or_else(|| {
                    format!("status: `{text}` is not one of wait, success, close, timeout")
                })?);
            }
        }
        let day = |field: &str, text: &str| -> Result<Option<NaiveDate>, String> {
            match text.trim() {
                "" => Ok(None),
                text => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| format!("{field}: `{text}` is not a date (YYYY-MM-DD)")),
            }
        };
        if let Some(from) = day("from", &self.from)? {
            filter.created_from = Some(beijing_midnight(from));
        }
        if let Some(to) = day("to", &self.to)? {
            filter.created_to = Some(beijing_midnight(to + Days::new(1)));
        }
        let yuan = |field: &str, text: &str| -> Result<Option<i64>, String> {
            match text.trim() {
                "" => Ok(None),
                text => Fen::from_yuan_str(text)
                    .map(|fen| Some(fen.get()))
                    .map_err(|error| {
                        format!("{field}: `{text}` is not an amount in yuan: {error}")
                    }),
            }
        };
        filter.amount_min_fen = yuan("min", &self.min)?;
        filter.amount_max_fen = yuan("max", &self.max)?;
        let page = match self.page.trim() {
            "" => 1,
            text => text
                .parse::<u64>()
                .ok()
                .filter(|page| *page >= 1)
                .ok_or_else(|| format!("page: `{text}` is not a page number"))?,
        };
        Ok((filter, page))
    }

    /// These fields as a query string for `page` (the pager's links).
    pub(crate) fn with_page(&self, page: u64) -> String {
        let pairs = [
            ("id", self.id.as_str()),
            ("status", self.status.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("min", self.min.as_str()),
            ("max", self.max.as_str()),
        ];
        let mut query: Vec<String> = pairs
            .iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(name, value)| format!("{name}={}", path_segment(value.trim())))
            .collect();
        query.push(format!("page={page}"));
        query.join("&")
    }
}

async fn search(
    State(console): State<Arc<Console>>,
    Path((org, app)): Path<(String, String)>,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let (place, session, store) = match console.open_page(&org, &app, &headers) {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let query = query.map(|Query(query)| query).unwrap_or_default();
    let (filter, page) = match query.filter() {
        Ok(found) => found,
        Err(problem) => {
            return views::search_page(
                &place,
                &session,
                &SearchPage {
                    query,
                    problem: Some(problem),
                    ..SearchPage::default()
                },
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let found = async {
        let total = store.count_orders(&filter).await?;
        let orders = store
            .list_orders(&filter, (page - 1).saturating_mul(PAGE_SIZE), PAGE_SIZE)
            .await?;
        Ok::<_, jit_pays::db::store::StoreError>((total, orders))
    }
    .await;
    match found {
        Ok((total, orders)) => views::search_page(
            &place,
            &session,
            &SearchPage {
                query,
                problem: None,
                total,
                page,
                orders,
            },
            StatusCode::OK,
        ),
        Err(error) => store_failed(&error),
    }
}

#[derive(Deserialize)]
struct OrderQuery {
    /// The action just run (its result is shown above the order).
    #[serde(default)]
    done: Option<String>,
}

async fn order_page(
    State(console): State<Arc<Console>>,
    Path((org, app, order_id)): Path<(String, String, String)>,
    headers: HeaderMap,
    query: Result<Query<OrderQuery>, QueryRejection>,
) -> Response {
    let (place, session, store) = match console.open_page(&org, &app, &headers) {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let done = query
        .ok()
        .and_then(|Query(query)| query.done)
        .and_then(|done| Action::parse(&done));
    let gathered = async {
        let Some(order) = store.find_order(&order_id).await? else {
            return Ok(None);
        };
        let record = store.find_record(&order_id).await?;
        let notifies = store.notifies_of(&order_id).await?;
        let refunds = store.list_refunds(&order_id).await?;
        let filter = EventFilter {
            order_id: Some(order_id.clone()),
            ..EventFilter::default()
        };
        let events = list_events(store.connection(), &filter, EVENTS_SHOWN).await?;
        let mut attempts = Vec::with_capacity(events.len());
        for event in &events {
            attempts.push(
                event_detail(store.connection(), &event.event.id)
                    .await?
                    .map(|(_, attempts)| attempts)
                    .unwrap_or_default(),
            );
        }
        Ok::<_, jit_pays::db::store::StoreError>(Some(OrderPage {
            order,
            record,
            notifies,
            refunds,
            events: events.into_iter().zip(attempts).collect(),
            done,
        }))
    }
    .await;
    match gathered {
        Ok(Some(page)) => views::order_page(&place, &session, &page),
        Ok(None) => views::message_page(
            StatusCode::NOT_FOUND,
            "No such order",
            &format!("There is no order {order_id}."),
            Some((&place, &session)),
        ),
        Err(error) => store_failed(&error),
    }
}

async fn confirm_page(
    State(console): State<Arc<Console>>,
    Path((org, app, order_id, action)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let place = match console.place(&org, &app) {
        Ok(place) => place,
        Err(page) => return *page,
    };
    let session = match page_session(&console, &place, &headers) {
        Ok(session) => session,
        Err(redirect) => return *redirect,
    };
    match action_and_order(&console, &place, &session, &action, &order_id).await {
        Ok((action, order)) => views::confirm_page(&place, &session, &order, action),
        Err(page) => *page,
    }
}

/// The action a URL names and the order it is for, or the page that says which of them
/// (or the store) is missing.
async fn action_and_order(
    console: &Console,
    place: &Place,
    session: &Session,
    action: &str,
    order_id: &str,
) -> Result<(Action, jit_pays::db::entity::pay_log::Model), Box<Response>> {
    let Some(action) = Action::parse(action) else {
        return Err(Box::new(views::message_page(
            StatusCode::NOT_FOUND,
            "No such action",
            "The actions are check, cancel and refund.",
            Some((place, session)),
        )));
    };
    let store = console.store()?;
    match store.find_order(order_id).await {
        Ok(Some(order)) => Ok((action, order)),
        Ok(None) => Err(Box::new(views::message_page(
            StatusCode::NOT_FOUND,
            "No such order",
            &format!("There is no order {order_id}."),
            Some((place, session)),
        ))),
        Err(error) => Err(Box::new(store_failed(&error))),
    }
}

#[derive(Default, Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// Refund: the amount in yuan; empty refunds what is left.
    #[serde(default)]
    amount: String,
    /// Refund: the reason shown to the buyer.
    #[serde(default)]
    reason: String,
}

async fn run_action(
    State(console): State<Arc<Console>>,
    Path((org, app, order_id, action)): Path<(String, String, String, String)>,
    request: Request,
) -> Response {
    let place = match console.place(&org, &app) {
        Ok(place) => place,
        Err(page) => return *page,
    };
    let peer = peer_of(request.extensions());
    let request_id = request
        .extensions()
        .get::<crate::server::request_id::RequestId>()
        .map(|id| id.0.clone());
    let headers = request.headers().clone();
    let form: ActionForm = form_of(request).await;
    let (_, session) = match action_session(&console, &headers, &form.csrf) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let (action, order) =
        match action_and_order(&console, &place, &session, &action, &order_id).await {
            Ok(found) => found,
            Err(page) => return *page,
        };
    // Exactly the calls the HTTP API makes; the console is one more caller.
    let (element, function, mut args) = match action {
        Action::Check => (PAY_SVC, "check", json!({ "orderId": order_id })),
        Action::Cancel => (
            order.element.as_str(),
            "cancel",
            json!({ "orderId": order_id }),
        ),
        Action::Refund => (PAY_SVC, "refund", json!({ "orderId": order_id })),
    };
    if action == Action::Refund {
        if !form.amount.trim().is_empty() {
            args["amount"] = Value::String(form.amount.trim().to_owned());
        }
        if !form.reason.trim().is_empty() {
            args["reason"] = Value::String(form.reason.trim().to_owned());
        }
    }
    let context = CallContext {
        request_id,
        principal: Some("console".to_owned()),
        peer,
        ..Default::default()
    };
    tracing::info!(
        action = action.as_str(),
        order_id = %log_safe(&order_id),
        "console action"
    );
    match console
        .server
        .app()
        .call(element, function, args, &context)
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "{}?done={}",
            place.order_url(&order_id),
            action.as_str()
        ))
        .into_response(),
        Err(error) => {
            let error = console.server.internals.answer(error);
            views::message_page(
                error.status(),
                &format!("The {} was refused", action.as_str()),
                &format!("{}: {}", error.code(), error.message()),
                Some((&place, &session)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_become_one_path_segment() {
        assert_eq!(path_segment("D2026-01_a.b~"), "D2026-01_a.b~");
        assert_eq!(path_segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(console_base("demo", "shop"), "/admin/demo/shop/");
    }

    #[test]
    fn search_fields_become_a_filter_or_name_what_is_wrong() {
        let query = SearchQuery {
            id: " D2026 ".into(),
            status: "wait".into(),
            from: "2026-01-02".into(),
            to: "2026-01-02".into(),
            min: "0.5".into(),
            max: "10".into(),
            page: "2".into(),
        };
        let (filter, page) = query.filter().unwrap();
        assert_eq!(page, 2);
        assert_eq!(filter.order_id_prefix.as_deref(), Some("D2026"));
        assert_eq!(filter.status, Some(PayStatus::Wait));
        assert_eq!(filter.amount_min_fen, Some(50));
        assert_eq!(filter.amount_max_fen, Some(1000));
        // One Beijing day: 2026-01-01T16:00Z to 2026-01-02T16:00Z.
        assert_eq!(
            filter.created_from.unwrap().to_rfc3339(),
            "2026-01-01T16:00:00+00:00"
        );
        assert_eq!(
            filter.created_to.unwrap().to_rfc3339(),
            "2026-01-02T16:00:00+00:00"
        );
        for (field, bad) in [
            (
                "status",
                SearchQuery {
                    status: "paid".into(),
                    ..SearchQuery::default()
                },
            ),
            (
                "from",
                SearchQuery {
                    from: "2026-13-01".into(),
                    ..SearchQuery::default()
                },
            ),
            (
                "min",
                SearchQuery {
                    min: "1.234".into(),
                    ..SearchQuery::default()
                },
            ),
            (
                "page",
                SearchQuery {
                    page: "0".into(),
                    ..SearchQuery::default()
                },
            ),
        ] {
            let problem = bad.filter().unwrap_err();
            assert!(problem.starts_with(field), "{problem}");
        }
        assert_eq!(
            query.with_page(3),
            "id=D2026&status=wait&from=2026-01-02&to=2026-01-02&min=0.5&max=10&page=3"
        );
    }
}
