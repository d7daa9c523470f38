//! `jit events ls | show | replay`: the outbox seen from the command line.
//!
//! Each command opens the database exactly as `jit serve` does (the same configuration,
//! the same migrations: [`crate::official::open_store`]) and never starts the simulator
//! or a server. `replay` routes events with the consumers `jit serve` would use
//! ([`crate::official::events::EventsConfig::routes`]) and only queues them: the running
//! server's dispatcher delivers them at its next poll.
//!
//! Times are shown in Beijing time through `wechatpay_v2::time` (the `--json` forms add
//! RFC 3339 UTC); consumer URLs are shown redacted.

use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use jit_pays::PayStore;
use jit_pays::db::entity::{event, event_delivery, webhook_delivery};
use jit_pays::db::outbox::{ConsumerRoute, HOOKS_CONSUMER};
use jit_pays::db::store::StoreError;
use jit_pays::db::{redact_url, scrub_database_url};
use jit_pays::outbox::{EventFilter, EventRecord, event_detail, list_events, replay_events};
use jit_runtime::log_safe;
use serde_json::{Value, json};
use wechatpay_v2::time::beijing_readable_time;

use crate::cli::{EventsAction, EventsArgs, EventsLsArgs, EventsReplayArgs, EventsShowArgs};
use crate::error::{HostError, RewrittenError};
use crate::host::Host;
use crate::official::config::PaysConfig;

pub(crate) async fn events(host: &Host, args: EventsArgs) -> Result<ExitCode, HostError> {
    match args.action {
        EventsAction::Ls(args) => ls(host, args).await,
        EventsAction::Show(args) => show(host, args).await,
        EventsAction::Replay(args) => replay(host, args).await,
    }
}

/// The app's payment settings and its database, opened as `jit serve` opens it.
async fn open(host: &Host, app_dir: &Path) -> Result<(PaysConfig, PayStore), HostError> {
    if !host.has_official_families() {
        return Err(HostError::command(
            "this host carries no payment family, so it has no payment events",
        ));
    }
    let (_, _, pays) = host.resolve_serve_config(app_dir, &Default::default())?;
    let store = crate::official::open_store(&pays).await?;
    Ok((pays, store))
}

/// A store error as a command's failure, the database URL's secrets scrubbed from every
/// level of its chain.
fn failed(doing: &str, error: StoreError, pays: &PaysConfig) -> HostError {
    let scrubbed = RewrittenError::of(&error, &|text| scrub_database_url(text, &pays.database_url));
    HostError::command_caused(doing.to_owned(), scrubbed)
}

async fn ls(host: &Host, args: EventsLsArgs) -> Result<ExitCode, HostError> {
    let (pays, store) = open(host, &args.app.app).await?;
    let filter = EventFilter {
        kind: args.kind,
        order_id: args.order_id,
        undelivered: args.undelivered,
        since: args.since,
    };
    let records = list_events(store.connection(), &filter, args.limit)
        .await
        .map_err(|err| failed("cannot list the events", err, &pays))?;
    if args.json {
        let shown: Vec<Value> = records.iter().map(event_json).collect();
        println!("{}", pretty(&Value::Array(shown))?);
    } else {
        for record in &records {
            println!("{}", event_line(record));
        }
        if records.is_empty() {
            eprintln!("no events match");
        }
    }
    if records.len() as u64 >= args.limit {
        eprintln!(
            "(the oldest {} matching events; --limit N shows more, --since TIME starts later)",
            args.limit
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(host: &Host, args: EventsShowArgs) -> Result<ExitCode, HostError> {
    let (pays, store) = open(host, &args.app.app).await?;
    let id = args.id.trim();
    let detail = event_detail(store.connection(), id)
        .await
        .map_err(|err| failed("cannot read the event", err, &pays))?;
    let Some((record, attempts)) = detail else {
        return Err(unknown_event(id, &pays));
    };
    let payload: Value = serde_json::from_str(&record.event.payload)
        .unwrap_or_else(|_| Value::String(record.event.payload.clone()));
    if args.json {
        let mut shown = event_json(&record);
        shown["payload"] = payload;
        shown["attempts"] = attempts.iter().map(attempt_json).collect();
        println!("{}", pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    let event = &record.event;
    println!("event {}", event.id);
    println!(
        "  type:    {} (envelope version {})",
        event.event_type, event.version
    );
    println!(
        "  order:   {} (event #{} of the order, element {})",
        event.order_id, event.order_seq, event.element
    );
    println!("  created: {} (Beijing time)", beijing(event.created_at));
    println!();
    println!("payload:");
    println!("{}", pretty(&payload)?);
    println!();
    println!("deliveries:");
    if record.deliveries.is_empty() {
        println!("  none (no consumer was configured for this type when it was written)");
    }
    for delivery in &record.deliveries {
        let mut line = format!(
            "  {}  {}  attempts {}",
            consumer(&delivery.consumer),
            delivery.status,
            delivery.attempts
        );
        match delivery.status.as_str() {
            "delivered" => {
                if let Some(at) = delivery.delivered_at {
                    line.push_str(&format!("  delivered {}", beijing(at)));
                }
            }
            "pending" => line.push_str(&format!(
                "  next attempt {}  gives up {}",
                beijing(delivery.next_attempt_at),
                beijing(delivery.give_up_at)
            )),
            _ => {}
        }
        if let Some(error) = &delivery.last_error {
            line.push_str(&format!("  last error: {}", log_safe(error)));
        }
        println!("{line}");
    }
    println!();
    println!("attempts:");
    if attempts.is_empty() {
        println!("  none recorded (a hooks delivery that succeeded is not recorded)");
    }
    for attempt in &attempts {
        let status = attempt
            .status_code
            .map_or_else(|| "no answer".to_owned(), |code| format!("HTTP {code}"));
        let mut line = format!(
            "  #{} {}  {}  {} ms  instance {}  {}",
            attempt.attempt,
            consumer(&attempt.endpoint),
            status,
            attempt.latency_ms,
            log_safe(&attempt.instance),
            beijing(attempt.attempted_at),
        );
        if let Some(error) = &attempt.error {
            line.push_str(&format!("  error: {}", log_safe(error)));
        }
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(host: &Host, args: EventsReplayArgs) -> Result<ExitCode, HostError> {
    let (pays, store) = open(host, &args.app.app).await?;
    let routes = chosen_routes(&pays, args.endpoint.as_deref())?;
    let events: Vec<event::Model> = match (&args.id, args.since) {
        (Some(id), _) => {
            let id = id.trim();
            match event_detail(store.connection(), id)
                .await
                .map_err(|err| failed("cannot read the event", err, &pays))?
            {
                Some((record, _)) => vec![record.event],
                None => return Err(unknown_event(id, &pays)),
            }
        }
        (None, Some(since)) => {
            let filter = EventFilter {
                since: Some(since),
                ..EventFilter::default()
            };
            list_events(store.connection(), &filter, i64::MAX as u64)
                .await
                .map_err(|err| failed("cannot list the events to replay", err, &pays))?
                .into_iter()
                .map(|record| record.event)
                .collect()
        }
        // clap requires one of the two.
        (None, None) => {
            return Err(HostError::command(
                "name the event to replay (ID) or a time (--since TIME)",
            ));
        }
    };
    let queued = replay_events(store.connection(), &events, &routes)
        .await
        .map_err(|err| failed("cannot queue the replay", err, &pays))?;
    let consumers: Vec<String> = routes.iter().map(|route| consumer(&route.name)).collect();
    println!(
        "queued {queued} deliveries of {} event(s) for {}",
        events.len(),
        consumers.join(", ")
    );
    if queued > 0 {
        println!("a running `jit serve` delivers them at its next poll");
    }
    Ok(ExitCode::SUCCESS)
}

/// The routes a replay goes to: every configured consumer, or the one `endpoint` names
/// (`hooks` or a configured webhook URL).
fn chosen_routes(
    pays: &PaysConfig,
    endpoint: Option<&str>,
) -> Result<Vec<ConsumerRoute>, HostError> {
    let routes = pays.events.routes();
    let Some(endpoint) = endpoint else {
        return Ok(routes);
    };
    let wanted = if endpoint.trim() == HOOKS_CONSUMER {
        Some(HOOKS_CONSUMER.to_owned())
    } else {
        pays.events.webhook(endpoint).map(|known| known.url.clone())
    };
    match wanted.and_then(|name| routes.into_iter().find(|route| route.name == name)) {
        Some(route) => Ok(vec![route]),
        None => {
            let configured: Vec<String> = pays
                .events
                .routes()
                .iter()
                .map(|route| consumer(&route.name))
                .collect();
            Err(HostError::command(format!(
                "--endpoint `{}` is not a configured consumer; the configured ones are {} \
                 (`hooks`, and each [[webhooks]] url of app.toml)",
                redact_url(endpoint),
                configured.join(", ")
            )))
        }
    }
}

fn unknown_event(id: &str, pays: &PaysConfig) -> HostError {
    HostError::command(format!(
        "no event `{}` in the database {}; `jit events ls` lists the events",
        log_safe(id),
        redact_url(&pays.database_url)
    ))
}

/// `id  type  order  created  consumer:state ...`
fn event_line(record: &EventRecord) -> String {
    let event = &record.event;
    let deliveries: Vec<String> = record
        .deliveries
        .iter()
        .map(|delivery| format!("{}:{}", consumer(&delivery.consumer), state(delivery)))
        .collect();
    format!(
        "{}  {:<22}  {}  {}  {}",
        event.id,
        event.event_type,
        event.order_id,
        beijing(event.created_at),
        if deliveries.is_empty() {
            "(no consumer)".to_owned()
        } else {
            deliveries.join(" ")
        }
    )
}

/// `delivered`, `pending`, `pending(3)` (3 attempts failed so far), `dead(12)`.
fn state(delivery: &event_delivery::Model) -> String {
    if delivery.status == "delivered" || delivery.attempts == 0 {
        delivery.status.clone()
    } else {
        format!("{}({})", delivery.status, delivery.attempts)
    }
}

/// A consumer as shown: `hooks`, or the endpoint's URL redacted.
fn consumer(name: &str) -> String {
    if name == HOOKS_CONSUMER {
        name.to_owned()
    } else {
        redact_url(name)
    }
}

fn beijing(instant: DateTime<Utc>) -> String {
    beijing_readable_time(instant)
}

fn event_json(record: &EventRecord) -> Value {
    let event = &record.event;
    json!({
        "id": event.id,
        "type": event.event_type,
        "version": event.version,
        "order_id": event.order_id,
        "order_seq": event.order_seq,
        "element": event.element,
        "created_at": event.created_at.to_rfc3339(),
        "created_beijing": beijing(event.created_at),
        "deliveries": record.deliveries.iter().map(delivery_json).collect::<Vec<_>>(),
    })
}

fn delivery_json(delivery: &event_delivery::Model) -> Value {
    json!({
        "consumer": consumer(&delivery.consumer),
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at.to_rfc3339(),
        "give_up_at": delivery.give_up_at.to_rfc3339(),
        "delivered_at": delivery.delivered_at.map(|at| at.to_rfc3339()),
        "last_error": delivery.last_error,
    })
}

fn attempt_json(attempt: &webhook_delivery::Model) -> Value {
    json!({
        "consumer": consumer(&attempt.endpoint),
        "attempt": attempt.attempt,
        "status_code": attempt.status_code,
        "latency_ms": attempt.latency_ms,
        "error": attempt.error,
        "instance": attempt.instance,
        "attempted_at": attempt.attempted_at.to_rfc3339(),
    })
}

fn pretty(value: &Value) -> Result<String, HostError> {
    serde_json::to_string_pretty(value)
        .map_err(|err| HostError::command_caused("cannot print JSON", err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(status: &str, attempts: i32) -> event_delivery::Model {
        let at = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        event_delivery::Model {
            id: 1,
            event_id: "e".into(),
            consumer: "https://erp.example.com/hook?token=abc".into(),
            order_id: "o".into(),
            order_seq: 1,
            status: status.into(),
            attempts,
            backoff_from: 0,
            next_attempt_at: at,
            give_up_at: at,
            lease_owner: None,
            lease_until: None,
            last_error: None,
            created_at: at,
            delivered_at: None,
        }
    }

    #[test]
    fn a_line_shows_each_consumers_state_in_beijing_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut hooks = delivery("delivered", 1);
        hooks.consumer = HOOKS_CONSUMER.into();
        let record = EventRecord {
            event: event::Model {
                id: "0193a0a0-0000-7000-8000-000000000001".into(),
                event_type: "order.paid".into(),
                version: 1,
                order_id: "D20261130200000000001".into(),
                order_seq: 1,
                element: "pays.myWechatPay".into(),
                payload: "{}".into(),
                created_at: at,
            },
            deliveries: vec![hooks, delivery("pending", 3)],
        };
        assert_eq!(
            event_line(&record),
            "0193a0a0-0000-7000-8000-000000000001  order.paid              \
             D20261130200000000001  2026-11-30 20:00:00  \
             hooks:delivered https://erp.example.com/hook?token=***:pending(3)"
        );
        assert_eq!(state(&delivery("pending", 0)), "pending");
        assert_eq!(state(&delivery("dead", 12)), "dead(12)");
        let shown = event_json(&record).to_string();
        assert!(!shown.contains("abc"), "{shown}");
        assert!(
            shown.contains("\"created_at\":\"2026-11-30T12:00:00+00:00\""),
            "{shown}"
        );
    }
}
