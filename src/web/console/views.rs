//! The console's pages (maud: every value is escaped unless marked otherwise, and nothing
//! here marks a value otherwise). Times are shown in Beijing time, WeChat's and the bills'
//! clock; amounts in yuan from integer fen ([`Fen`]'s `Display`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use jit_pays::db::entity::{notify_log, pay_log, refund, webhook_delivery, wechat_record};
use jit_pays::db::outbox::EventRecord;
use maud::{Markup, html};
use wechatpay_v2::Fen;

use super::session::Session;
use super::{Action, PAGE_SIZE, Place, SearchQuery};
use crate::web::{HtmlPage, Nonce};

/// The console's own style, after the shared one: a wider page, tables, a header bar.
const CONSOLE_STYLE: &str = "\
main{max-width:72rem;margin:1rem auto}\
header.bar{display:flex;gap:1rem;align-items:center;flex-wrap:wrap;max-width:72rem;margin:1rem auto 0;padding:0 1.5rem}\
header.bar strong{margin-right:auto}\
header.bar a{color:#1d1f23}\
header.bar form{margin:0}\
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.25rem;font-size:.9rem}\
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e5e9;vertical-align:top}\
th{color:#5f6673;font-weight:600}\
table.facts th{width:14rem}\
h2{font-size:1.05rem;margin:1.5rem 0 .25rem}\
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin-bottom:1rem}\
.card{flex:1 1 10rem;padding:.75rem 1rem;border:1px solid #e3e5e9;border-radius:.5rem}\
.card .n{font-size:1.6rem;font-weight:600}\
.notice{padding:.6rem .9rem;border-radius:.5rem;background:#e8f5e9;margin-bottom:1rem}\
.problem{padding:.6rem .9rem;border-radius:.5rem;background:#fdecea;margin-bottom:1rem}\
form.search{display:flex;gap:.5rem;flex-wrap:wrap;align-items:end}\
form.search label{display:flex;flex-direction:column;font-size:.8rem;color:#5f6673}\
input,select,button{font:inherit;padding:.3rem .5rem}\
button{cursor:pointer}\
.actions{display:flex;gap:.75rem;margin:.5rem 0 1rem}\
.refused{color:#b3261e;font-weight:600}\
.ok{color:#1b5e20;font-weight:600}\
details pre{max-height:20rem;overflow:auto}\
";

/// A time in Beijing time, WeChat's clock.
fn when(instant: DateTime<Utc>) -> String {
    wechatpay_v2::time::beijing_readable_time(instant)
}

fn maybe_when(instant: Option<DateTime<Utc>>) -> String {
    instant.map(when).unwrap_or_else(|| "—".to_owned())
}

fn or_dash(text: Option<&str>) -> &str {
    text.unwrap_or("—")
}

/// A page of the console: the header bar (when logged in) and `body`.
fn page(
    status: StatusCode,
    title: &str,
    logged_in: Option<(&Place, &Session)>,
    body: Markup,
) -> Response {
    let nonce = Nonce::new();
    let header = logged_in.map(|(place, session)| {
        html! {
            header.bar {
                strong { "jit console · " (place.app) }
                a href=(place.base) { "Dashboard" }
                a href={ (place.base) "orders" } { "Orders" }
                form method="post" action={ (place.base) "logout" } {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button type="submit" { "Log out" }
                }
            }
        }
    });
    HtmlPage {
        status,
        title: format!("{title} · jit console"),
        nonce,
        style: CONSOLE_STYLE,
        body: html! {
            @if let Some(header) = header { (header) }
            main {
                h1 { (title) }
                (body)
            }
        },
    }
    .into_response()
}

/// A page that only says something (not found, refused, an action's error).
pub(crate) fn message_page(
    status: StatusCode,
    title: &str,
    text: &str,
    logged_in: Option<(&Place, &Session)>,
) -> Response {
    page(status, title, logged_in, html! { p.problem { (text) } })
}

/// The login form. The token is posted in the body (never in a URL) and not echoed back.
pub(crate) fn login_page(place: &Place, status: StatusCode, problem: Option<&str>) -> Response {
    page(
        status,
        &format!("Log in to {}", place.app),
        None,
        html! {
            @if let Some(problem) = problem { p.problem { (problem) } }
            p.muted { "Enter one of the app's API tokens ([auth] tokens in app.toml). It is checked once; the browser keeps only a session cookie." }
            form method="post" action={ (place.base) "login" } {
                p {
                    label { "API token " input type="password" name="token" autocomplete="current-password" required autofocus; }
                }
                button type="submit" { "Log in" }
            }
        },
    )
}

/// What the dashboard shows.
pub(crate) struct Dashboard {
    /// Today, Beijing day.
    pub(crate) today: NaiveDate,
    /// Orders paid today.
    pub(crate) paid_count: u64,
    /// Their sum.
    pub(crate) paid_sum: Fen,
    /// Orders waiting for payment.
    pub(crate) waiting: u64,
    /// Waiting orders past their expiry (the reconciler has not closed them yet).
    pub(crate) stuck_count: u64,
    /// The first of them.
    pub(crate) stuck: Vec<pay_log::Model>,
    /// Refused notifies today by reason kind.
    pub(crate) refusals: Vec<(String, i64)>,
    /// Notify log entries dropped under load since the start.
    pub(crate) notify_log_dropped: u64,
}

pub(crate) fn dashboard_page(place: &Place, session: &Session, dashboard: &Dashboard) -> Response {
    let refused_total: i64 = dashboard.refusals.iter().map(|(_, count)| count).sum();
    page(
        StatusCode::OK,
        "Dashboard",
        Some((place, session)),
        html! {
            p.muted { "Today is " (dashboard.today.format("%Y-%m-%d")) " (Beijing day)." }
            div.cards {
                div.card id="paid-today" { div.n { (dashboard.paid_count) } "paid today" }
                div.card id="paid-sum" { div.n { "¥" (dashboard.paid_sum) } "paid today, total" }
                div.card id="waiting" { div.n { (dashboard.waiting) } "waiting for payment" }
                div.card id="stuck" { div.n { (dashboard.stuck_count) } "waiting past expiry" }
                div.card id="refused" { div.n { (refused_total) } "notifies refused today" }
            }
            h2 { "Notify refusals today, by reason" }
            @if dashboard.refusals.is_empty() {
                p.muted { "None." }
            } @else {
                table id="refusals" {
                    tr { th { "reason" } th { "count" } }
                    @for (kind, count) in &dashboard.refusals {
                        tr { td { (kind) } td { (count) } }
                    }
                }
            }
            @if dashboard.notify_log_dropped > 0 {
                p.problem { (dashboard.notify_log_dropped) " notifies were not logged (the log's queue was full)." }
            }
            h2 { "Waiting past expiry" }
            @if dashboard.stuck.is_empty() {
                p.muted { "None: the reconciler closes expired orders." }
            } @else {
                (orders_table(place, &dashboard.stuck))
                @if dashboard.stuck_count > dashboard.stuck.len() as u64 {
                    p { a href={ (place.base) "orders?status=wait" } { "All waiting orders" } }
                }
            }
        },
    )
}

fn orders_table(place: &Place, orders: &[pay_log::Model]) -> Markup {
    html! {
        table id="orders" {
            tr {
                th { "order" } th { "subject" } th { "amount (¥)" } th { "status" }
                th { "created" } th { "paid" } th { "expires" }
            }
            @for order in orders {
                tr {
                    td { a href=(place.order_url(&order.order_id)) { code { (order.order_id) } } }
                    td { (order.subject) }
                    td { (Fen::new(order.amount_fen)) }
                    td { (order.status.as_str()) @if order.paid_after_close { " (after close)" } }
                    td { (when(order.created_at)) }
                    td { (maybe_when(order.paid_at)) }
                    td { (when(order.expires_at)) }
                }
            }
        }
    }
}

/// What the search page shows.
#[derive(Default)]
pub(crate) struct SearchPage {
    /// The fields as typed.
    pub(crate) query: SearchQuery,
    /// What is wrong with them.
    pub(crate) problem: Option<String>,
    /// Orders matching.
    pub(crate) total: u64,
    /// This page (1-based).
    pub(crate) page: u64,
    /// This page's orders.
    pub(crate) orders: Vec<pay_log::Model>,
}

pub(crate) fn search_page(
    place: &Place,
    session: &Session,
    search: &SearchPage,
    status: StatusCode,
) -> Response {
    let query = &search.query;
    let pages = search.total.div_ceil(PAGE_SIZE).max(1);
    page(
        status,
        "Orders",
        Some((place, session)),
        html! {
            form.search method="get" action={ (place.base) "orders" } {
                label { "order id (or its start)" input name="id" value=(query.id); }
                label { "status"
                    select name="status" {
                        @for (value, shown) in [("", "any"), ("wait", "wait"), ("success", "success"), ("close", "close"), ("timeout", "timeout")] {
                            option value=(value) selected[query.status == value] { (shown) }
                        }
                    }
                }
                label { "created from (Beijing day)" input type="date" name="from" value=(query.from); }
                label { "created to (inclusive)" input type="date" name="to" value=(query.to); }
                label { "amount from (¥)" input name="min" inputmode="decimal" value=(query.min) size="8"; }
                label { "amount to (¥)" input name="max" inputmode="decimal" value=(query.max) size="8"; }
                button type="submit" { "Search" }
            }
            @if let Some(problem) = &search.problem {
                p.problem { (problem) }
            } @else {
                p.muted id="found" { (search.total) " order(s); page " (search.page) " of " (pages) "." }
                (orders_table(place, &search.orders))
                div.actions {
                    @if search.page > 1 {
                        a href={ (place.base) "orders?" (query.with_page(search.page - 1)) } { "← newer" }
                    }
                    @if search.page < pages {
                        a href={ (place.base) "orders?" (query.with_page(search.page + 1)) } { "older →" }
                    }
                }
            }
        },
    )
}

/// What an order page shows.
pub(crate) struct OrderPage {
    /// The pay log row.
    pub(crate) order: pay_log::Model,
    /// Its WeChat record.
    pub(crate) record: Option<wechat_record::Model>,
    /// Every notify received for it, newest first.
    pub(crate) notifies: Vec<notify_log::Model>,
    /// Its refunds.
    pub(crate) refunds: Vec<refund::Model>,
    /// Its events with their deliveries, and each event's webhook attempts.
    pub(crate) events: Vec<(EventRecord, Vec<webhook_delivery::Model>)>,
    /// The action just run.
    pub(crate) done: Option<Action>,
}

/// Which actions make sense for the order as it stands (the element decides; this only
/// keeps buttons that cannot work off the page).
fn offered(order: &pay_log::Model) -> Vec<Action> {
    let mut actions = vec![Action::Check];
    match order.status {
        jit_pays::PayStatus::Wait => actions.push(Action::Cancel),
        jit_pays::PayStatus::Success if order.refunded_fen < order.amount_fen => {
            actions.push(Action::Refund)
        }
        _ => {}
    }
    actions
}

pub(crate) fn order_page(place: &Place, session: &Session, view: &OrderPage) -> Response {
    let order = &view.order;
    let order_url = place.order_url(&order.order_id);
    page(
        StatusCode::OK,
        &format!("Order {}", order.order_id),
        Some((place, session)),
        html! {
            @if let Some(done) = view.done {
                p.notice id="done" { "The " (done.as_str()) " is done; the order now reads as below." }
            }
            div.actions {
                @for action in offered(order) {
                    a href={ (order_url) "/confirm/" (action.as_str()) } id={ "action-" (action.as_str()) } {
                        (action.as_str()) "…"
                    }
                }
            }
            h2 { "Pay log" }
            table.facts id="pay-log" {
                tr { th { "order id" } td { code { (order.order_id) } } }
                tr { th { "subject" } td { (order.subject) } }
                tr { th { "amount (¥)" } td { (Fen::new(order.amount_fen)) } }
                tr { th { "status" } td id="status" { (order.status.as_str()) } }
                tr { th { "paid after close" } td { (order.paid_after_close) } }
                tr { th { "element" } td { code { (order.element) } } }
                tr { th { "pay type" } td { (or_dash(order.pay_type.as_deref())) } }
                tr { th { "transaction id" } td { (or_dash(order.transaction_id.as_deref())) } }
                tr { th { "refunded (¥)" } td { (Fen::new(order.refunded_fen)) } }
                tr { th { "created (Beijing)" } td { (when(order.created_at)) } }
                tr { th { "updated" } td { (when(order.updated_at)) } }
                tr { th { "paid" } td { (maybe_when(order.paid_at)) } }
                tr { th { "closed" } td { (maybe_when(order.closed_at)) } }
                tr { th { "expires" } td { (when(order.expires_at)) } }
                tr { th { "checks so far" } td { (order.check_attempts) } }
                tr { th { "next check" } td { (when(order.next_check_at)) } }
            }
            h2 { "WeChat record" }
            @match &view.record {
                None => p.muted { "None: no prepay order was made at WeChat, and WeChat has said nothing of it." },
                Some(record) => table.facts id="wechat-record" {
                    tr { th { "appid / mch_id" } td { (record.appid) " / " (record.mch_id) } }
                    tr { th { "trade type" } td { (or_dash(record.trade_type.as_deref())) } }
                    tr { th { "prepay id" } td { (or_dash(record.prepay_id.as_deref())) } }
                    tr { th { "code_url" } td { (or_dash(record.code_url.as_deref())) } }
                    tr { th { "mweb_url" } td { (or_dash(record.mweb_url.as_deref())) } }
                    tr { th { "trade state" } td { (or_dash(record.trade_state.as_deref())) } }
                    tr { th { "transaction id" } td { (or_dash(record.transaction_id.as_deref())) } }
                    tr { th { "total_fee (fen)" } td { (record.total_fee) } }
                    tr { th { "last notify" } td { (maybe_when(record.notified_at))
                        @if let Some(notify) = &record.last_notify { details { summary { "body" } pre { (notify) } } } } }
                    tr { th { "last query" } td { (maybe_when(record.queried_at))
                        @if let Some(query) = &record.last_query { details { summary { "answer" } pre { (query) } } } } }
                },
            }
            h2 { "Notifies received" }
            @if view.notifies.is_empty() {
                p.muted id="notifies" { "None." }
            } @else {
                table id="notifies" {
                    tr { th { "received" } th { "kind" } th { "outcome" } th { "verified" } th { "reason" } th { "from" } th { "body" } }
                    @for notify in &view.notifies {
                        tr {
                            td { (when(notify.received_at)) }
                            td { (notify.kind) }
                            td { span class=(if notify.outcome == "refused" || notify.outcome == "failed" { "refused" } else { "ok" }) { (notify.outcome) } }
                            td { (if notify.verified { "yes" } else { "no" }) }
                            td {
                                @if let Some(kind) = &notify.reason_kind { code { (kind) } ": " }
                                (or_dash(notify.reason.as_deref()))
                            }
                            td { (or_dash(notify.peer.as_deref())) }
                            td { details { summary { (notify.body_len) " bytes" } pre { (notify.body) } } }
                        }
                    }
                }
            }
            h2 { "Refunds" }
            @if view.refunds.is_empty() {
                p.muted id="refunds" { "None." }
            } @else {
                table id="refunds" {
                    tr { th { "refund id" } th { "amount (¥)" } th { "status" } th { "reason" } th { "WeChat refund id" } th { "failure" } th { "asked" } th { "succeeded" } }
                    @for refund in &view.refunds {
                        tr {
                            td { code { (refund.refund_id) } }
                            td { (Fen::new(refund.amount_fen)) }
                            td { (refund.status.as_str()) }
                            td { (or_dash(refund.reason.as_deref())) }
                            td { (or_dash(refund.wechat_refund_id.as_deref())) }
                            td { (or_dash(refund.failure.as_deref())) }
                            td { (when(refund.created_at)) }
                            td { (maybe_when(refund.succeeded_at)) }
                        }
                    }
                }
            }
            h2 { "Events and deliveries" }
            @if view.events.is_empty() {
                p.muted id="events" { "None." }
            } @else {
                table id="events" {
                    tr { th { "event" } th { "type" } th { "written" } th { "deliveries" } th { "webhook attempts" } }
                    @for (record, attempts) in &view.events {
                        tr {
                            td { code { (record.event.id) } }
                            td { (record.event.event_type) }
                            td { (when(record.event.created_at)) }
                            td {
                                @for delivery in &record.deliveries {
                                    div { (delivery.consumer) ": " (delivery.status) " (" (delivery.attempts) " attempt(s))"
                                        @if let Some(error) = &delivery.last_error { " — " (error) } }
                                }
                            }
                            td {
                                @for attempt in attempts {
                                    div { "#" (attempt.attempt) " " (attempt.endpoint) " → "
                                        (attempt.status_code.map(|code| code.to_string()).unwrap_or_else(|| "no answer".to_owned()))
                                        " in " (attempt.latency_ms) " ms"
                                        @if let Some(error) = &attempt.error { " — " (error) } }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The confirmation step of `action`: what it will do, and the form that does it.
pub(crate) fn confirm_page(
    place: &Place,
    session: &Session,
    order: &pay_log::Model,
    action: Action,
) -> Response {
    let order_url = place.order_url(&order.order_id);
    let left = Fen::new(order.amount_fen - order.refunded_fen);
    let (title, explanation) = match action {
        Action::Check => (
            "Check this order with WeChat?",
            "Asks WeChat for the order's state (orderquery) and applies what it says: a payment WeChat has is recorded here.".to_owned(),
        ),
        Action::Cancel => (
            "Cancel this order?",
            "Closes the order at WeChat and here; a payer can no longer pay it. If WeChat says it is paid, it is recorded as paid instead.".to_owned(),
        ),
        Action::Refund => (
            "Refund this order?",
            format!("Asks WeChat to pay money back to the payer. At most ¥{left} is left to refund; leave the amount empty to refund all of it."),
        ),
    };
    page(
        StatusCode::OK,
        title,
        Some((place, session)),
        html! {
            table.facts {
                tr { th { "order id" } td { code { (order.order_id) } } }
                tr { th { "subject" } td { (order.subject) } }
                tr { th { "amount (¥)" } td { (Fen::new(order.amount_fen)) } }
                tr { th { "status" } td { (order.status.as_str()) } }
            }
            p { (explanation) }
            form method="post" action={ (order_url) "/" (action.as_str()) } {
                input type="hidden" name="csrf" value=(session.csrf);
                @if action == Action::Refund {
                    p { label { "amount (¥) " input name="amount" inputmode="decimal" placeholder=(left.to_string()); } }
                    p { label { "reason " input name="reason" maxlength="80"; } }
                }
                div.actions {
                    button type="submit" id="confirm" { "Yes, " (action.as_str()) }
                    a href=(order_url) { "No, back to the order" }
                }
            }
        },
    )
}
