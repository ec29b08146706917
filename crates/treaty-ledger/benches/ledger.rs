//! Ledger benchmarks: durable appends per second with group commit (the
//! Merkle tree kept in the same commit), strict-mode append latency at
//! concurrency 1 and 64, verification throughput, inclusion-proof
//! generation latency, and one receipt's signing cost, on a SQLite file
//! (and PostgreSQL when one answers at TREATY_TEST_PG).
//!
//! `cargo bench -p treaty-ledger --bench ledger`
//!
//! Criterion reports mean times per iteration; the strict-latency section
//! also prints p50/p99 per append, which criterion does not give.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use treaty_ledger::{
    AttemptRecord, DecisionRecord, Durability, Entry, HostVerdict, Ledger, LedgerSettings,
    OutcomeRecord, RequestFeatures, VerifyOptions, verify,
};
use treaty_store::Store;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A decision as the Frontier example writes one (about 700 bytes).
fn decision(n: u64) -> Entry {
    let host = |h: &str, allowed: bool, c: &[&str]| HostVerdict {
        host: h.into(),
        allowed,
        clauses: c.iter().map(|c| (*c).into()).collect(),
    };
    Entry::Decision(DecisionRecord {
        request_id: format!("req_0193a1b2c3d4e5f6{n:016x}"),
        at_ms: 1_767_225_600_000 + n as i64,
        key_id: "key_0193a1b2c3d4e5f6a7b8c9d0".into(),
        tenant: "acme-enterprise".into(),
        channel: "aws-marketplace".into(),
        product: "frontier".into(),
        route: "/v1/chat/completions".into(),
        model: "gpt-4o".into(),
        workload_class: "stateless_api".into(),
        classified_by: "agent-model-steps".into(),
        data_classification: "internal".into(),
        declared_class: None,
        reading: Some("reading-openai".into()),
        admitted: true,
        admit_clauses: vec!["C5-frontier-aws-distribution".into()],
        hosts: vec![
            host("azure-eastus", true, &["C1-azure-exclusive-stateless"]),
            host("azure-westus", true, &["C1-azure-exclusive-stateless"]),
            host("azure-westeurope", false, &["C8-us-data-in-us"]),
            host(
                "bedrock-us-east-1",
                false,
                &["C1-azure-exclusive-stateless"],
            ),
            host("vllm-onprem", false, &["C1-azure-exclusive-stateless"]),
        ],
        chosen: Some("azure-eastus".into()),
        features: RequestFeatures::default(),
        model_step: true,
        run_id: Some("run_0193a1b2c3d4e5f6a7b8c9d0".into()),
        refused: None,
        runtime: None,
        tool: None,
        ..Default::default()
    })
}

fn outcome(n: u64) -> Entry {
    Entry::Outcome(OutcomeRecord {
        request_id: format!("req_0193a1b2c3d4e5f6{n:016x}"),
        at_ms: 1_767_225_600_000 + n as i64 + 250,
        served_by: Some("azure-eastus".into()),
        attempts: vec![AttemptRecord {
            host: "azure-eastus".into(),
            error: None,
            latency_us: 241_000,
        }],
        status: 200,
        prompt_tokens: 812,
        completion_tokens: 164,
        cost_micros: 3_670,
        latency_us: 250_000,
        client_cancelled: false,
        error: None,
    })
}

fn entry(n: u64) -> Entry {
    if n.is_multiple_of(2) {
        decision(n)
    } else {
        outcome(n)
    }
}

async fn sqlite_store(dir: &tempfile::TempDir, name: &str) -> Store {
    let url = format!("sqlite://{}", dir.path().join(name).display());
    Store::open(&url).await.unwrap()
}

fn key() -> treaty_ledger::note::SecretKey {
    treaty_ledger::note::SecretKey::from_seed("bench.example/ledger", [7; 32]).unwrap()
}

fn settings(durability: Durability) -> LedgerSettings {
    LedgerSettings {
        durability,
        key: treaty_ledger::SignerSource::Signer(
            treaty_ledger::KeySigner::new(key(), "bench").shared(),
        ),
        ..LedgerSettings::default()
    }
}

/// `in_flight` appends outstanding at once, refilled as they commit: the
/// shape of a gateway under load, where every request has a record queued.
async fn pump(ledger: &Ledger, total: u64, in_flight: usize, next: &mut u64) -> Duration {
    let start = Instant::now();
    let mut queue = std::collections::VecDeque::with_capacity(in_flight);
    for _ in 0..total {
        if queue.len() == in_flight {
            let f: treaty_ledger::Appended = queue.pop_front().unwrap();
            f.await.unwrap();
        }
        *next += 1;
        queue.push_back(ledger.append(entry(*next)));
    }
    for f in queue {
        f.await.unwrap();
    }
    start.elapsed()
}

fn appends(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(sqlite_store(&dir, "appends.db"));
    let ledger = rt
        .block_on(Ledger::open(store, settings(Durability::Batched)))
        .unwrap();
    let mut next = 0u64;
    let mut group = c.benchmark_group("sqlite_durable_appends");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    const PER_ITER: u64 = 4096;
    group.throughput(Throughput::Elements(PER_ITER));
    for in_flight in [256usize, 1024] {
        group.bench_with_input(
            BenchmarkId::new("in_flight", in_flight),
            &in_flight,
            |b, &in_flight| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut t = Duration::ZERO;
                        for _ in 0..iters {
                            t += pump(&ledger, PER_ITER, in_flight, &mut next).await;
                        }
                        t
                    })
                });
            },
        );
    }
    group.finish();
    let stats = ledger.stats();
    eprintln!(
        "sqlite appends: {} records in {} transactions ({:.0} records per sync)",
        stats.records,
        stats.batches,
        stats.records as f64 / stats.batches.max(1) as f64
    );
    rt.block_on(ledger.shutdown()).unwrap();
}

/// Each of `clients` tasks appends and waits, `per_client` times; returns
/// every append's latency.
async fn strict_latencies(ledger: &Ledger, clients: u64, per_client: u64) -> Vec<Duration> {
    let mut tasks = JoinSet::new();
    for c in 0..clients {
        let ledger = ledger.clone();
        tasks.spawn(async move {
            let mut out = Vec::with_capacity(per_client as usize);
            for i in 0..per_client {
                let t = Instant::now();
                ledger.append(entry(c * 1_000_000 + i)).await.unwrap();
                out.push(t.elapsed());
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    all.sort();
    all
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn strict(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(sqlite_store(&dir, "strict.db"));
    let ledger = rt
        .block_on(Ledger::open(store, settings(Durability::Strict)))
        .unwrap();
    let mut group = c.benchmark_group("sqlite_strict_append_latency");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for clients in [1u64, 64] {
        // One iteration: every client appends one record and waits for it.
        group.bench_with_input(
            BenchmarkId::new("concurrency", clients),
            &clients,
            |b, &clients| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        strict_latencies(&ledger, clients, iters).await;
                        start.elapsed()
                    })
                });
            },
        );
    }
    group.finish();
    for (clients, per_client) in [(1u64, 300u64), (64, 60)] {
        let lat = rt.block_on(strict_latencies(&ledger, clients, per_client));
        eprintln!(
            "sqlite strict append latency at concurrency {clients}: p50 {:?}, p99 {:?}, max {:?} ({} appends)",
            pct(&lat, 0.50),
            pct(&lat, 0.99),
            lat[lat.len() - 1],
            lat.len()
        );
    }
    rt.block_on(ledger.shutdown()).unwrap();
}

fn verification(c: &mut Criterion) {
    const RECORDS: u64 = 200_000;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(sqlite_store(&dir, "verify.db"));
    rt.block_on(async {
        let ledger = Ledger::open(store.clone(), settings(Durability::Batched))
            .await
            .unwrap();
        let mut next = 0;
        pump(&ledger, RECORDS, 2048, &mut next).await;
        ledger.shutdown().await.unwrap();
    });
    let mut group = c.benchmark_group("sqlite_verify");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function(BenchmarkId::new("records", RECORDS), |b| {
        b.iter(|| {
            let report = rt
                .block_on(verify(&store, VerifyOptions::default(), |_, _| {}))
                .unwrap();
            assert!(report.ok && report.records == RECORDS);
        });
    });
    group.finish();
    let start = Instant::now();
    rt.block_on(verify(&store, VerifyOptions::default(), |_, _| {}))
        .unwrap();
    let per_min = RECORDS as f64 / start.elapsed().as_secs_f64() * 60.0;
    eprintln!("sqlite verify: {per_min:.0} records/min");

    // Inclusion proofs against the latest checkpoint, for records spread
    // over the whole log (the API's GET /v1/ledger/proofs/{id} path, minus
    // the lookup by request id, which is one indexed read).
    let mut lat = Vec::with_capacity(2000);
    rt.block_on(async {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seq = 1 + x % RECORDS;
            let t = Instant::now();
            let p = treaty_ledger::prove_seq(&store, seq).await.unwrap();
            lat.push(t.elapsed());
            assert_eq!(p.seq, seq);
        }
    });
    lat.sort();
    eprintln!(
        "sqlite inclusion proof over {RECORDS} records: p50 {:?}, p99 {:?}, max {:?} (2000 proofs)",
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        lat[lat.len() - 1]
    );
}

/// One receipt: canonical bytes and leaf hash of the decision, then one
/// Ed25519 signature (what the gateway adds per response).
fn receipts(c: &mut Criterion) {
    let Entry::Decision(d) = decision(1) else {
        return;
    };
    let signer = treaty_ledger::KeySigner::new(key(), "bench");
    let vkey = key().verifier();
    let mut group = c.benchmark_group("receipt");
    group.bench_function("build_and_sign", |b| {
        b.iter(|| {
            treaty_ledger::Receipt::for_decision(&d, 12345, Some("azure-eastus"), &vkey, 1)
                .unwrap()
                .sign(&signer)
                .unwrap()
        })
    });
    group.bench_function("ed25519_sign_only", |b| {
        b.iter(|| {
            treaty_ledger::Signer::sign(
                &signer,
                b"a receipt-sized message of about three hundred bytes",
            )
        })
    });
    group.finish();
}

fn postgres(c: &mut Criterion) {
    let rt = runtime();
    let Some(url) = rt.block_on(treaty_store::test_pg::fresh_database("bench")) else {
        return;
    };
    let store = rt.block_on(Store::open(&url)).unwrap();
    let ledger = rt
        .block_on(Ledger::open(store.clone(), settings(Durability::Batched)))
        .unwrap();
    let mut next = 0u64;
    let mut group = c.benchmark_group("postgres_durable_appends");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    const PER_ITER: u64 = 4096;
    group.throughput(Throughput::Elements(PER_ITER));
    group.bench_function(BenchmarkId::new("in_flight", 1024), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    t += pump(&ledger, PER_ITER, 1024, &mut next).await;
                }
                t
            })
        });
    });
    group.finish();
    let lat = rt.block_on(strict_latencies(&ledger, 1, 200));
    eprintln!(
        "postgres strict append latency at concurrency 1: p50 {:?}, p99 {:?}",
        pct(&lat, 0.50),
        pct(&lat, 0.99)
    );
    rt.block_on(ledger.shutdown()).unwrap();
    let start = Instant::now();
    let report = rt
        .block_on(verify(&store, VerifyOptions::default(), |_, _| {}))
        .unwrap();
    assert!(report.ok);
    eprintln!(
        "postgres verify: {:.0} records/min ({} records)",
        report.records as f64 / start.elapsed().as_secs_f64() * 60.0,
        report.records
    );
    rt.block_on(store.close());
    rt.block_on(treaty_store::test_pg::drop_database(&url));
}

criterion_group!(benches, receipts, appends, strict, verification, postgres);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
