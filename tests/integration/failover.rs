//! Failover: the real server on a multi-host URL (`target_session_attrs=read-write`) over a
//! primary with a synchronous standby, under a write and read load; the primary is killed
//! (`pg_ctl stop -m immediate`), the standby promoted, and the server must serve again
//! without a restart, with every write it acknowledged on the new primary.
//!
//! It prints what it measured (recovery time, acknowledged writes against writes found,
//! calls failed before and after the promotion). It asserts the bounds the issue sets: served
//! again within 10 s of the promotion, no acknowledged write lost, no call failed once the
//! standby was promoted, and every failure before it `UNAVAILABLE` `STORE_UNAVAILABLE`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use ssod::proto::{self, AttributeScope};
use tonic::{Code, Status};

use crate::{
    harness::{TestServer, assert_error, authed, json_value, test_config},
    pg::ReplicatedPair,
};

const SESSION: i32 = AttributeScope::Session as i32;
const DATABASE: &str = "ssod_failover";
const WRITERS: usize = 4;
const READERS: usize = 2;
/// How long the server may take to serve again once the standby is promoted.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);
/// The time a failover manager would take to decide; calls fail meanwhile.
const DECISION_TIME: Duration = Duration::from_secs(1);
/// Acknowledged writes before the stop, and again after the recovery.
const WRITES_PER_PHASE: usize = 100;

/// One call of the load: when it ran and how it ended.
struct Call {
    started: Instant,
    finished: Instant,
    outcome: Result<(), Status>,
}

/// A write the server acknowledged: the value `value` under `name` in the writer's session.
#[derive(Clone)]
struct Acknowledged {
    writer: usize,
    name: String,
    value: u64,
}

/// A writer's guest session: its UST and its session id.
struct Writer {
    ust: String,
    session_id: String,
}

#[derive(Default)]
struct Ledger {
    calls: Mutex<Vec<Call>>,
    acknowledged: Mutex<Vec<Acknowledged>>,
    /// Acknowledged writes a read did not find: each is a lost write.
    lost: Mutex<Vec<String>>,
}

impl Ledger {
    fn record(&self, started: Instant, outcome: Result<(), Status>) {
        let call = Call {
            started,
            finished: Instant::now(),
            outcome,
        };
        self.calls.lock().expect("calls").push(call);
    }

    fn acknowledged(&self) -> Vec<Acknowledged> {
        self.acknowledged.lock().expect("acknowledged").clone()
    }

    /// The end of the first successful call started at or after `since`.
    fn first_success_since(&self, since: Instant) -> Option<Instant> {
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .filter(|call| call.started >= since && call.outcome.is_ok())
            .map(|call| call.finished)
            .min()
    }

    fn acknowledged_count(&self) -> usize {
        self.acknowledged.lock().expect("acknowledged").len()
    }
}

async fn write_until_stopped(
    server: Arc<TestServer>,
    writers: Arc<Vec<Writer>>,
    writer: usize,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let ust = &writers[writer].ust;
    let mut value = 0u64;
    while !stop.load(Ordering::Relaxed) {
        value += 1;
        let name = format!("n{value:06}");
        let started = Instant::now();
        let outcome = server
            .set_attribute(ust, SESSION, &name, serde_json::json!(value))
            .await
            .map(drop);
        let failed = outcome.is_err();
        if outcome.is_ok() {
            ledger
                .acknowledged
                .lock()
                .expect("acknowledged")
                .push(Acknowledged {
                    writer,
                    name,
                    value,
                });
        }
        ledger.record(started, outcome);
        if failed {
            // As a client would: a failing store is not hammered.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads back acknowledged writes (the newest, then an older one): each must be there.
async fn read_until_stopped(
    server: Arc<TestServer>,
    writers: Arc<Vec<Writer>>,
    reader: usize,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let mut round = reader;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let target = {
            let acknowledged = ledger.acknowledged.lock().expect("acknowledged");
            match acknowledged.len() {
                0 => None,
                len if round.is_multiple_of(2) => acknowledged.get(len - 1).cloned(),
                len => acknowledged.get(round * 7919 % len).cloned(),
            }
        };
        let Some(target) = target else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let started = Instant::now();
        let outcome = server
            .get_attribute(&writers[target.writer].ust, SESSION, &target.name)
            .await;
        let outcome = match outcome {
            Ok(response) => {
                let attribute = response.into_inner().attribute.expect("attribute");
                assert_eq!(
                    attribute.value,
                    Some(json_value(serde_json::json!(target.value))),
                    "{} of writer {}",
                    target.name,
                    target.writer
                );
                Ok(())
            }
            Err(status) if status.code() == Code::NotFound => {
                ledger.lost.lock().expect("lost").push(target.name.clone());
                Ok(())
            }
            Err(status) => Err(status),
        };
        let failed = outcome.is_err();
        ledger.record(started, outcome);
        if failed {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits until `ledger` holds `count` acknowledged writes; false at the deadline.
async fn wait_for_acknowledged(ledger: &Ledger, count: usize, deadline: Instant) -> bool {
    while ledger.acknowledged_count() < count {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

async fn create_database(pair: &ReplicatedPair) {
    crate::pg::connect(&pair.primary_admin_url())
        .await
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .await
        .expect("create the database");
}

/// Every session attribute on the standby, now the primary: session id → name → JSON text.
async fn attributes_on_the_new_primary(
    pair: &ReplicatedPair,
) -> HashMap<String, HashMap<String, String>> {
    let client = crate::pg::connect(&pair.standby_url(DATABASE)).await;
    let in_recovery: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("recovery state")
        .get(0);
    assert!(!in_recovery, "the standby was promoted");
    let rows = client
        .query(
            "SELECT session_id::text, name, convert_from(value, 'UTF8') FROM session_attributes",
            &[],
        )
        .await
        .expect("attributes");
    let mut found: HashMap<String, HashMap<String, String>> = HashMap::new();
    for row in rows {
        found
            .entry(row.get(0))
            .or_default()
            .insert(row.get(1), row.get(2));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_failover_to_a_synchronous_standby() {
    let pair = tokio::task::spawn_blocking(ReplicatedPair::start)
        .await
        .expect("the replicated pair starts");
    create_database(&pair).await;
    let mut config = test_config();
    config.database.url = Some(pair.multi_host_url(DATABASE));
    // Every write is a new name: room for all of them in one session.
    config.limits.max_attributes_per_owner = 1_000_000;
    let store = ssod::open_store(&config).await.expect("store opens");
    let server = Arc::new(TestServer::start_on(config, store).await);

    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let guest = server.guest().await;
        writers.push(Writer {
            ust: guest.ust,
            session_id: guest.session.expect("session").session_id,
        });
    }
    let writers = Arc::new(writers);
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for writer in 0..WRITERS {
        load.push(tokio::spawn(write_until_stopped(
            Arc::clone(&server),
            Arc::clone(&writers),
            writer,
            Arc::clone(&ledger),
            Arc::clone(&stop),
        )));
    }
    for reader in 0..READERS {
        load.push(tokio::spawn(read_until_stopped(
            Arc::clone(&server),
            Arc::clone(&writers),
            reader,
            Arc::clone(&ledger),
            Arc::clone(&stop),
        )));
    }
    assert!(
        wait_for_acknowledged(
            &ledger,
            WRITES_PER_PHASE,
            Instant::now() + Duration::from_secs(30)
        )
        .await,
        "the load runs before the failover"
    );

    let pair = Arc::new(pair);
    let stopping = Arc::clone(&pair);
    tokio::task::spawn_blocking(move || stopping.stop_primary())
        .await
        .expect("stop the primary");
    let stopped_at = Instant::now();
    let acknowledged_before_stop = ledger.acknowledged_count();
    tokio::time::sleep(DECISION_TIME).await;
    let promoting = Arc::clone(&pair);
    tokio::task::spawn_blocking(move || promoting.promote_standby())
        .await
        .expect("promote the standby");
    let promoted_at = Instant::now();

    let recovered = wait_for_acknowledged(
        &ledger,
        ledger.acknowledged_count() + WRITES_PER_PHASE,
        promoted_at + RECOVERY_BOUND,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load task");
    }
    let first_success = ledger.first_success_since(stopped_at);
    assert!(
        recovered && first_success.is_some_and(|at| at <= promoted_at + RECOVERY_BOUND),
        "ssod served again within {RECOVERY_BOUND:?} of the promotion, without a restart"
    );
    let first_success = first_success.expect("a success after the stop");

    let acknowledged = ledger.acknowledged();
    // Through ssod: every acknowledged write is there, with its value.
    let mut found_through_ssod = 0;
    for (writer, session) in writers.iter().enumerate() {
        let stored = server
            .attributes()
            .get_attributes(authed(
                &session.ust,
                proto::GetAttributesRequest {
                    scope: SESSION,
                    ..Default::default()
                },
            ))
            .await
            .expect("read back through ssod")
            .into_inner()
            .attributes;
        for write in acknowledged.iter().filter(|write| write.writer == writer) {
            let attribute = stored
                .get(&write.name)
                .unwrap_or_else(|| panic!("acknowledged {} of writer {writer} lost", write.name));
            assert_eq!(
                attribute.value,
                Some(json_value(serde_json::json!(write.value)))
            );
            found_through_ssod += 1;
        }
    }
    // Directly on the new primary.
    let stored = attributes_on_the_new_primary(&pair).await;
    let mut found_directly = 0;
    for write in &acknowledged {
        let session = &writers[write.writer].session_id;
        let text = stored
            .get(session)
            .and_then(|names| names.get(&write.name))
            .unwrap_or_else(|| panic!("acknowledged {} missing on the new primary", write.name));
        let value: serde_json::Value = serde_json::from_str(text).expect("stored JSON");
        assert_eq!(value.as_f64(), Some(write.value as f64), "{}", write.name);
        found_directly += 1;
    }
    let stored_total: usize = writers
        .iter()
        .filter_map(|writer| stored.get(&writer.session_id))
        .map(HashMap::len)
        .sum();
    let lost = ledger.lost.lock().expect("lost").clone();
    assert!(
        lost.is_empty(),
        "reads missed acknowledged writes: {lost:?}"
    );

    let calls = ledger.calls.lock().expect("calls");
    let failed: Vec<&Call> = calls.iter().filter(|call| call.outcome.is_err()).collect();
    for call in &failed {
        let status = call.outcome.as_ref().expect_err("a failure");
        assert_error(status, Code::Unavailable, "STORE_UNAVAILABLE");
    }
    let failed_before_promotion = failed
        .iter()
        .filter(|call| call.started < promoted_at)
        .count();
    let failed_after_promotion = failed.len() - failed_before_promotion;
    let last_failure = failed.iter().map(|call| call.finished).max();
    println!(
        "failover: {} calls, {} acknowledged writes ({acknowledged_before_stop} before the \
         stop), found {found_through_ssod} through ssod and {found_directly} on the new primary \
         ({stored_total} rows: {} written by calls that failed); stop → promoted {:?}, \
         stop → first success {:?}, promoted → first success {:?}; calls failed: \
         {failed_before_promotion} before the promotion, {failed_after_promotion} after it \
         (last failure {:?} after the promotion)",
        calls.len(),
        acknowledged.len(),
        stored_total - found_directly,
        promoted_at - stopped_at,
        first_success - stopped_at,
        first_success.saturating_duration_since(promoted_at),
        last_failure.map(|at| at.saturating_duration_since(promoted_at)),
    );
    assert_eq!(found_through_ssod, acknowledged.len());
    assert_eq!(found_directly, acknowledged.len());
    // The pool dropped the connections the stop killed as soon as they were used or
    // recycled, and opens new ones only on the writable host: once the standby is promoted,
    // no call fails.
    assert_eq!(
        failed_after_promotion, 0,
        "calls failed after the promotion"
    );
}
