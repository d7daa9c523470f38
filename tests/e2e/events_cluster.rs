//! Issue 12's cluster test: three `jit serve` processes on one PostgreSQL, a standalone
//! simulator as their gateway, two webhook endpoints. A thousand concurrent notifies (ten
//! per order, duplicates spread over the instances) make exactly one transition and one
//! event per order; each endpoint gets each event exactly once; and the three reconcilers
//! between them query each waiting order once per round. PostgreSQL only (several
//! instances share a database there): skipped unless `JIT_TEST_POSTGRES_URL` is set.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use test_support::WebhookReceiver;
use wechatpay_sim::{MerchantConfig, SimConfig, Simulator};

use crate::binary::Served;
use crate::events_support::{
    Backend, Db, ShopApi, ShopConfig, WEBHOOK_SECRET, events_ls, paid_notify, poll, shop_app,
    transaction_id,
};
use crate::util::{SHOP_APPID, SHOP_KEY, SHOP_MCH_ID, client, is_success_reply};

const INSTANCES: usize = 3;
const PAID_ORDERS: usize = 100;
const NOTIFIES_PER_ORDER: usize = 10;
const WAITING_ORDERS: usize = 30;

/// Each instance's events and reconciler settings: consumers poll every 200 ms; a waiting
/// order is first queried a second after its creation, then after 2 s, 4 s, ... (the
/// backoff doubles from `first_check_after_secs`, far from its cap).
const SETTINGS: &str = "[events]\npoll_interval_ms = 200\n\n\
    [reconciler]\nfirst_check_after_secs = 1\nmax_backoff_secs = 3600\nscan_interval_ms = 200\n";

/// The pause after an order's first query before it is due again: `first_check_after`
/// doubled once.
const SECOND_ROUND_AFTER_MS: f64 = 2000.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_three_instances_on_postgres_share_the_work() {
    let Some(backend) = Backend::postgres("events_three_instances_on_postgres_share_the_work")
    else {
        return;
    };
    let simulator = Simulator::start(SimConfig {
        merchants: vec![MerchantConfig::new(SHOP_APPID, SHOP_MCH_ID, SHOP_KEY)],
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let gateway = simulator.base_url();
    let receivers = [
        WebhookReceiver::start(WEBHOOK_SECRET).await,
        WebhookReceiver::start(WEBHOOK_SECRET).await,
    ];
    let webhooks: Vec<String> = receivers.iter().map(WebhookReceiver::url).collect();
    let apps: Vec<tempfile::TempDir> = (1..=INSTANCES)
        .map(|n| {
            shop_app(&ShopConfig {
                backend: &backend,
                gateway: Some(&gateway),
                instance_id: &format!("cluster-{n}"),
                webhooks: &webhooks,
                extra: SETTINGS,
            })
        })
        .collect();
    let http = client();
    // All three at once, on a schema none has set up yet.
    let mut servers: Vec<Served> = apps
        .iter()
        .map(|app| Served::start(app.path(), &[]))
        .collect();
    for server in &mut servers {
        server.ready(&http).await;
    }
    let apis: Vec<ShopApi> = servers
        .iter()
        .map(|server| ShopApi::new(&server.base, &http))
        .collect();

    // A hundred orders, created round robin and placed at the gateway (so a reconciler
    // that looks before their notify finds them waiting there too).
    let orders: Vec<String> = join_all((0..PAID_ORDERS).map(|n| {
        let api = apis[n % INSTANCES].clone();
        async move {
            let order_id = api.create_order().await;
            api.place_at_gateway(&order_id).await;
            order_id
        }
    }))
    .await;

    // Ten genuine notifies per order, all at once, round robin over the instances: each
    // order's ten go to all three.
    let notifies: Vec<String> = orders
        .iter()
        .enumerate()
        .map(|(n, order_id)| paid_notify(order_id, &transaction_id(n)))
        .collect();
    let replies = join_all((0..PAID_ORDERS * NOTIFIES_PER_ORDER).map(|n| {
        let api = &apis[n % INSTANCES];
        let body = &notifies[n % PAID_ORDERS];
        async move { api.notify(body).await }
    }))
    .await;
    for (status, reply) in &replies {
        assert!(
            status.is_success() && is_success_reply(reply),
            "every notify is acknowledged: {status} {reply}"
        );
    }

    // Exactly one transition per order, each with one `order.paid` event.
    let db = Db::open(&backend, apps[0].path()).await;
    let statuses = db.statuses().await;
    for order_id in &orders {
        assert_eq!(
            statuses.get(order_id).map(String::as_str),
            Some("success"),
            "{order_id}"
        );
    }
    let events = db.events().await;
    assert_eq!(events.len(), PAID_ORDERS, "{events:?}");
    assert!(events.iter().all(|event| event.event_type == "order.paid"));
    let ordered: BTreeSet<&str> = orders.iter().map(String::as_str).collect();
    let evented: BTreeSet<&str> = events.iter().map(|e| e.order_id.as_str()).collect();
    assert_eq!(evented, ordered, "one event per order");
    let event_ids: BTreeSet<String> = events.iter().map(|e| e.id.clone()).collect();
    let listed = events_ls(apps[1].path(), &["--type", "order.paid", "--limit", "1000"]).await;
    let listed_ids: BTreeSet<String> = listed
        .iter()
        .map(|event| event["id"].as_str().expect("an id").to_owned())
        .collect();
    assert_eq!(listed_ids, event_ids, "jit events ls lists the same events");

    // Each endpoint gets every event; with no crash, exactly once.
    for receiver in &receivers {
        receiver
            .wait_until(Duration::from_secs(30), "every event", |got| {
                got.iter()
                    .map(|r| &r.event_id)
                    .collect::<BTreeSet<_>>()
                    .len()
                    >= PAID_ORDERS
            })
            .await;
    }
    poll(
        Duration::from_secs(30),
        "every delivery to be recorded",
        async || (db.undelivered().await == 0).then_some(()),
    )
    .await;
    for receiver in &receivers {
        let received = receiver.received();
        let mut per_event: BTreeMap<&str, usize> = BTreeMap::new();
        for delivery in &received {
            assert_eq!(delivery.verified, Ok(()), "{}", delivery.event_id);
            assert_eq!(delivery.event_type, "order.paid");
            *per_event.entry(delivery.event_id.as_str()).or_default() += 1;
        }
        let repeated: Vec<_> = per_event.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            repeated.is_empty(),
            "{} of {} events delivered more than once to {}, e.g. {:?}",
            repeated.len(),
            per_event.len(),
            receiver.url(),
            &repeated[..repeated.len().min(3)]
        );
        let received_ids: BTreeSet<String> = per_event.keys().map(|id| (*id).to_owned()).collect();
        assert_eq!(received_ids, event_ids, "{}", receiver.url());
    }

    // One attempt per event and endpoint, each answered 200, made by whichever instance
    // claimed it.
    let attempts = db.attempts().await;
    assert_eq!(
        attempts.len(),
        PAID_ORDERS * receivers.len(),
        "{attempts:?}"
    );
    let mut by_instance: BTreeMap<&str, usize> = BTreeMap::new();
    for attempt in &attempts {
        assert_eq!(attempt.status_code, Some(200), "{attempt:?}");
        assert!(webhooks.contains(&attempt.endpoint), "{attempt:?}");
        *by_instance.entry(attempt.instance.as_str()).or_default() += 1;
    }
    assert!(
        by_instance.keys().all(|id| id.starts_with("cluster-")),
        "{by_instance:?}"
    );
    eprintln!("webhook attempts by instance: {by_instance:?}");

    // Thirty more orders left unpaid: the three reconcilers between them query each once,
    // then not again before its next due time.
    let waiting: Vec<String> = join_all((0..WAITING_ORDERS).map(|n| {
        let api = apis[n % INSTANCES].clone();
        async move {
            let order_id = api.create_order().await;
            api.place_at_gateway(&order_id).await;
            order_id
        }
    }))
    .await;
    let inspection = poll(
        Duration::from_secs(30),
        "each waiting order to be queried in two rounds",
        async || {
            let inspection = simulator.inspect();
            waiting
                .iter()
                .all(|order_id| inspection.query_count(order_id) >= 2)
                .then_some(inspection)
        },
    )
    .await;
    for order_id in &waiting {
        let times = &inspection
            .order(order_id)
            .expect("the simulator holds the order")
            .queries
            .recent_t_ms;
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            // A second instance querying in the same round would come within a scan or two
            // (200 ms each) of the first.
            assert!(
                gap >= SECOND_ROUND_AFTER_MS - 500.0,
                "order {order_id} queried again {gap:.0} ms after the previous query, \
                 before its next due time: {times:?}"
            );
        }
    }
    let statuses = db.statuses().await;
    for order_id in &waiting {
        assert_eq!(statuses.get(order_id).map(String::as_str), Some("wait"));
    }

    db.close().await;
    for server in servers {
        server.stop().await;
    }
    simulator.shutdown().await;
}

/// Three instances started at the same moment on a database they have not set up yet, as
/// a deployment rolls out: each must come up. Without the advisory lock around creating
/// the schema and migrating (`jit_pays::db::connect`), two of them exited with "applying
/// the pays migrations failed: duplicate key value violates unique constraint
/// pg_type_typname_nsp_index" (or `pg_namespace_nspname_index`, from creating the schema).
#[tokio::test]
async fn events_three_instances_start_together_on_a_fresh_schema() {
    let Some(backend) =
        Backend::postgres("events_three_instances_start_together_on_a_fresh_schema")
    else {
        return;
    };
    let apps: Vec<tempfile::TempDir> = (1..=INSTANCES)
        .map(|n| {
            shop_app(&ShopConfig {
                backend: &backend,
                gateway: None,
                instance_id: &format!("rollout-{n}"),
                webhooks: &[],
                extra: "",
            })
        })
        .collect();
    let http = client();
    let mut servers: Vec<Served> = apps
        .iter()
        .map(|app| Served::start(app.path(), &[]))
        .collect();
    for server in &mut servers {
        server.ready(&http).await;
    }
    for server in servers {
        server.stop().await;
    }
}
