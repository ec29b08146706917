use super::*;

pub(crate) fn key(id: &str, hash: &str) -> NewKey {
    NewKey {
        id: id.into(),
        secret_hash: hash.into(),
        prefix: "tk-abcd".into(),
        tenant: "acme".into(),
        channel: "direct".into(),
        product: "api".into(),
        name: Some("ci".into()),
        models: Some(vec!["gpt-4o".into(), "gpt-4o-mini".into()]),
        declare_classes: Some(vec!["training".into()]),
        created_at: 1_700_000_000_000,
        expires_at: None,
        revoked_at: None,
    }
}

async fn exercise(store: &Store) {
    store.ping().await.unwrap();
    store.insert_key(&key("key_1", "h1")).await.unwrap();
    let mut k2 = key("key_2", "h2");
    k2.tenant = "dod".into();
    k2.models = None;
    store.insert_key(&k2).await.unwrap();

    let got = store.key_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(got, key("key_1", "h1"));
    assert!(store.key_by_hash("nope").await.unwrap().is_none());
    assert_eq!(store.list_keys(None).await.unwrap().len(), 2);
    assert_eq!(store.list_keys(Some("dod")).await.unwrap()[0].id, "key_2");

    assert!(store.revoke_key("key_1", 42).await.unwrap());
    assert!(
        !store.revoke_key("key_1", 43).await.unwrap(),
        "revoking twice"
    );
    assert_eq!(
        store.key_by_id("key_1").await.unwrap().unwrap().revoked_at,
        Some(42)
    );
    // Hashes are unique: the same secret cannot be stored twice.
    assert!(store.insert_key(&key("key_3", "h1")).await.is_err());
}

#[tokio::test]
async fn sqlite_file_is_created_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    exercise(&store).await;
    store.close().await;
    // Reopening runs no migration twice and keeps the data.
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.list_keys(None).await.unwrap().len(), 2);
}

/// The store holds key hashes, conversations and the ledger: its file and
/// SQLite's `-wal` and `-shm` beside it are the owner's alone.
#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    exercise(&store).await;
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
    store.close().await;
}

#[tokio::test]
async fn postgres_runs_the_same_queries() {
    let Some(url) = crate::test_pg::fresh_database("store").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    exercise(&store).await;
    store.close().await;
    crate::test_pg::drop_database(&url).await;
}

#[test]
fn unsupported_urls_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(Store::open("mysql://x")).unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)));
}

/// The stateful runtime's rows: tenant-scoped reads, ordered items,
/// fenced run leases. Run on both backends.
async fn exercise_runtime(store: &Store) {
    let item = |id: &str| ItemRow {
        item_id: id.into(),
        body: format!("{{\"id\":\"{id}\"}}"),
    };
    let resp = ResponseRow {
        id: "resp_1".into(),
        tenant: "acme".into(),
        channel: "direct".into(),
        product: "frontier".into(),
        key_id: "key_1".into(),
        previous_response_id: None,
        conversation_id: None,
        status: "in_progress".into(),
        created_at: 1,
        updated_at: 1,
        body: "{}".into(),
    };
    store
        .insert_response(&resp, &[item("msg_a"), item("msg_b")])
        .await
        .unwrap();
    assert!(store.response("dod", "resp_1").await.unwrap().is_none());
    assert!(
        store
            .finish_response("resp_1", "completed", 2, "{\"done\":1}", &[item("msg_c")])
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_response("resp_1", "failed", 3, "{}", &[])
            .await
            .unwrap(),
        "a finished response is not finished twice"
    );
    let got = store.response("acme", "resp_1").await.unwrap().unwrap();
    assert_eq!(
        (got.status.as_str(), got.body.as_str()),
        ("completed", "{\"done\":1}")
    );
    let input = store
        .response_items("resp_1", ItemKind::Input)
        .await
        .unwrap();
    assert_eq!(input, vec![item("msg_a"), item("msg_b")]);
    assert_eq!(
        store
            .response_items("resp_1", ItemKind::Output)
            .await
            .unwrap(),
        vec![item("msg_c")]
    );
    // Items by id (`item_reference`): input and output, the tenant's and
    // product's own only.
    for id in ["msg_a", "msg_c"] {
        assert_eq!(
            store.stored_item("acme", "frontier", id).await.unwrap(),
            Some(item(id).body)
        );
    }
    assert_eq!(
        store.stored_item("dod", "frontier", "msg_a").await.unwrap(),
        None
    );
    assert_eq!(
        store.stored_item("acme", "api", "msg_a").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .stored_item("acme", "frontier", "msg_x")
            .await
            .unwrap(),
        None
    );
    assert!(!store.delete_response("dod", "resp_1").await.unwrap());
    assert!(store.delete_response("acme", "resp_1").await.unwrap());
    assert!(
        store
            .response_items("resp_1", ItemKind::Input)
            .await
            .unwrap()
            .is_empty()
    );

    let conv = ConversationRow {
        id: "conv_1".into(),
        tenant: "acme".into(),
        channel: "direct".into(),
        product: "frontier".into(),
        created_at: 5,
        metadata: "{}".into(),
    };
    store
        .insert_conversation(&conv, &[item("i1")])
        .await
        .unwrap();
    store
        .append_conversation_items("conv_1", &[item("i2"), item("i3")], 6)
        .await
        .unwrap();
    assert_eq!(
        store.stored_item("acme", "frontier", "i3").await.unwrap(),
        Some(item("i3").body)
    );
    assert_eq!(
        store.stored_item("dod", "frontier", "i3").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .stored_item("acme", "frontier", "msg_a")
            .await
            .unwrap(),
        None,
        "a deleted response's items are gone"
    );
    let page = store
        .conversation_items("conv_1", Some(1), Order::Asc, 10)
        .await
        .unwrap();
    assert_eq!(
        page.iter()
            .map(|r| (r.seq, r.item_id.as_str()))
            .collect::<Vec<_>>(),
        vec![(2, "i2"), (3, "i3")]
    );
    let desc = store
        .conversation_items("conv_1", None, Order::Desc, 2)
        .await
        .unwrap();
    assert_eq!(desc[0].item_id, "i3");
    assert!(
        store
            .delete_conversation_item("conv_1", "i2")
            .await
            .unwrap()
    );
    assert!(
        store
            .conversation_item("conv_1", "i2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.conversation("dod", "conv_1").await.unwrap().is_none());
    assert!(
        !store
            .update_conversation("dod", "conv_1", "{\"x\":1}")
            .await
            .unwrap()
    );
    assert!(
        store
            .update_conversation("acme", "conv_1", "{\"x\":1}")
            .await
            .unwrap()
    );

    let run = |id: &str, created_at: i64| RunRow {
        id: id.into(),
        tenant: "acme".into(),
        channel: "direct".into(),
        product: "frontier".into(),
        agent_id: "agent_1".into(),
        conversation_id: "conv_1".into(),
        status: "queued".into(),
        created_at,
        updated_at: created_at,
        lease_owner: None,
        lease_until: 0,
        body: "{}".into(),
    };
    let created = |at_ms| RunEvent {
        kind: "run.created",
        at_ms,
        body: "{}",
    };
    store
        .insert_run(&run("run_1", 10), created(10))
        .await
        .unwrap();
    store
        .insert_run(&run("run_2", 11), created(11))
        .await
        .unwrap();
    let a = store.claim_run("w1", 100, 200).await.unwrap().unwrap();
    let b = store.claim_run("w2", 100, 200).await.unwrap().unwrap();
    assert_eq!((a.id.as_str(), b.id.as_str()), ("run_1", "run_2"));
    assert!(
        store.claim_run("w3", 150, 250).await.unwrap().is_none(),
        "both leased"
    );
    // w1 dies; after its lease, w3 takes run_1 over, and w1's late write is refused.
    let c = store.claim_run("w3", 201, 300).await.unwrap().unwrap();
    assert_eq!(c.id, "run_1");
    assert!(
        !store
            .save_run("run_1", "w1", change("completed", "{}", 202), 0, None)
            .await
            .unwrap()
    );
    assert!(
        store
            .save_run(
                "run_1",
                "w3",
                change("requires_action", "{\"s\":1}", 203),
                0,
                None
            )
            .await
            .unwrap()
    );
    assert!(store.claim_run("w4", 400, 500).await.unwrap().unwrap().id == "run_2");
    assert!(
        store
            .transition_run(
                "acme",
                "run_1",
                &["requires_action"],
                change("queued", "{\"s\":2}", 401),
                None
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .transition_run(
                "dod",
                "run_1",
                &["queued"],
                change("cancelled", "{}", 402),
                None
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.claim_run("w5", 402, 600).await.unwrap().unwrap().body,
        "{\"s\":2}"
    );
    assert_eq!(
        store
            .list_runs("acme", "frontier", None, None, Order::Asc, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .list_runs("dod", "frontier", None, None, Order::Asc, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Changes above logged nothing but `run.created` (seq 1).
    assert_eq!(
        store.append_run_event("run_1", "a", 1, "{}").await.unwrap(),
        2
    );
    assert_eq!(
        store.append_run_event("run_1", "b", 2, "{}").await.unwrap(),
        3
    );
    let ev = store.run_events("run_1", 2).await.unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, "b");
}

fn change<'a>(status: &'a str, body: &'a str, at_ms: i64) -> RunChange<'a> {
    RunChange {
        status,
        body,
        at_ms,
    }
}

fn announce(kind: &str, at_ms: i64) -> Option<RunEvent<'_>> {
    Some(RunEvent {
        kind,
        at_ms,
        body: "{\"e\":1}",
    })
}

async fn log(store: &Store, run_id: &str) -> Vec<(i64, String)> {
    store
        .run_events(run_id, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.kind))
        .collect()
}

/// A run's log agrees with its changes: a change that happens logs its
/// event with the next seq, one that loses its race logs nothing. Run on
/// both backends.
async fn exercise_run_events(store: &Store) {
    let run = RunRow {
        id: "run_e".into(),
        tenant: "acme".into(),
        channel: "direct".into(),
        product: "frontier".into(),
        agent_id: "agent_1".into(),
        conversation_id: "conv_1".into(),
        status: "queued".into(),
        created_at: 10,
        updated_at: 10,
        lease_owner: None,
        lease_until: 0,
        body: "{}".into(),
    };
    let created = RunEvent {
        kind: "run.created",
        at_ms: 10,
        body: "{\"id\":\"run_e\"}",
    };
    store.insert_run(&run, created).await.unwrap();
    let ev = store.run_events("run_e", 0).await.unwrap();
    assert_eq!(
        ev,
        vec![RunEventRow {
            seq: 1,
            kind: "run.created".into(),
            at_ms: 10,
            body: "{\"id\":\"run_e\"}".into(),
        }]
    );

    // w1 claims the run and dies; w2 takes it over after the lease.
    assert_eq!(
        store.claim_run("w1", 100, 200).await.unwrap().unwrap().id,
        "run_e"
    );
    assert_eq!(
        store.claim_run("w2", 201, 300).await.unwrap().unwrap().id,
        "run_e"
    );
    // A fenced save that loses logs nothing.
    assert!(
        !store
            .save_run(
                "run_e",
                "w1",
                change("completed", "{}", 202),
                0,
                announce("run.completed", 202)
            )
            .await
            .unwrap()
    );
    assert_eq!(log(store, "run_e").await, [(1, "run.created".into())]);
    // The holder's save logs exactly one event, the next.
    assert!(
        store
            .save_run(
                "run_e",
                "w2",
                change("in_progress", "{\"s\":1}", 203),
                300,
                announce("run.in_progress", 203)
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .save_run(
                "run_e",
                "w2",
                change("requires_action", "{\"s\":2}", 204),
                0,
                announce("run.requires_action", 204)
            )
            .await
            .unwrap()
    );
    // Parked: the fence refuses even its last holder.
    assert!(
        !store
            .save_run(
                "run_e",
                "w2",
                change("failed", "{}", 205),
                0,
                announce("run.failed", 205)
            )
            .await
            .unwrap()
    );
    assert_eq!(
        log(store, "run_e").await,
        [
            (1, "run.created".into()),
            (2, "run.in_progress".into()),
            (3, "run.requires_action".into()),
        ]
    );

    // A transition from a status the run is not in logs nothing; one from
    // any of several statuses it is in logs one event.
    assert!(
        !store
            .transition_run(
                "acme",
                "run_e",
                &["queued", "in_progress"],
                change("cancelled", "{}", 206),
                announce("run.cancelled", 206)
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .transition_run(
                "dod",
                "run_e",
                &["requires_action"],
                change("queued", "{}", 206),
                announce("run.queued", 206)
            )
            .await
            .unwrap(),
        "another tenant's key"
    );
    assert!(
        store
            .transition_run(
                "acme",
                "run_e",
                &["queued", "requires_action", "in_progress"],
                change("cancelled", "{\"s\":3}", 207),
                announce("run.cancelled", 207)
            )
            .await
            .unwrap()
    );
    // Two clients answering at once: one wins, one event.
    let answer = || {
        store.transition_run(
            "acme",
            "run_e",
            &["cancelled"],
            change("queued", "{}", 208),
            announce("run.queued", 208),
        )
    };
    let (a, b) = tokio::join!(answer(), answer());
    assert!(a.unwrap() ^ b.unwrap(), "exactly one transition wins");
    assert_eq!(
        log(store, "run_e").await,
        [
            (1, "run.created".into()),
            (2, "run.in_progress".into()),
            (3, "run.requires_action".into()),
            (4, "run.cancelled".into()),
            (5, "run.queued".into()),
        ]
    );
    let row = store.run("acme", "run_e").await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.lease_until), ("queued", 0));

    // Expiry logs one event per run it expires, and none for others.
    assert_eq!(
        store.claim_run("w3", 400, 500).await.unwrap().unwrap().id,
        "run_e"
    );
    assert!(
        store
            .save_run("run_e", "w3", change("requires_action", "{}", 401), 0, None)
            .await
            .unwrap()
    );
    assert!(
        store
            .expire_runs(401, 900, "run.expired", |id| format!("\"{id}\""))
            .await
            .unwrap()
            .is_empty(),
        "not waiting long enough"
    );
    assert_eq!(
        store
            .expire_runs(402, 900, "run.expired", |id| format!("\"{id}\""))
            .await
            .unwrap(),
        ["run_e"]
    );
    let last = store.run_events("run_e", 5).await.unwrap();
    assert_eq!(
        last,
        vec![RunEventRow {
            seq: 6,
            kind: "run.expired".into(),
            at_ms: 900,
            body: "\"run_e\"".into(),
        }]
    );

    // Changes and events appended on their own, all at once, each take a
    // seq of their own with no gap: a change that clashes on a seq is
    // tried again whole.
    let mut all = tokio::task::JoinSet::new();
    for i in 0..6 {
        let s = store.clone();
        all.spawn(async move {
            s.append_run_event("run_e", "tick", 1000 + i, "{}")
                .await
                .map(|_| true)
        });
        let s = store.clone();
        all.spawn(async move {
            s.transition_run(
                "acme",
                "run_e",
                &["expired"],
                change("expired", "{}", 1000 + i),
                announce("run.touched", 1000 + i),
            )
            .await
        });
    }
    while let Some(done) = all.join_next().await {
        assert!(done.unwrap().unwrap());
    }
    let seqs: Vec<i64> = log(store, "run_e").await.iter().map(|e| e.0).collect();
    assert_eq!(seqs, (1..=18).collect::<Vec<_>>());
}

#[tokio::test]
async fn sqlite_runtime_rows() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.unwrap();
    exercise_runtime(&store).await;
}

#[tokio::test]
async fn postgres_runtime_rows() {
    let Some(url) = crate::test_pg::fresh_database("runtime").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    exercise_runtime(&store).await;
    store.close().await;
    crate::test_pg::drop_database(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_run_events_follow_run_changes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.unwrap();
    exercise_run_events(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_run_events_follow_run_changes() {
    let Some(url) = crate::test_pg::fresh_database("run_events").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    exercise_run_events(&store).await;
    store.close().await;
    crate::test_pg::drop_database(&url).await;
}

fn budget(id: &str, limit: i64) -> BudgetRow {
    BudgetRow {
        id: id.into(),
        key_id: None,
        tenant: Some("acme".into()),
        channel: None,
        product: None,
        period: "month".into(),
        limit_micros: limit,
        soft_percents: vec![50, 80],
        source: "cli".into(),
        updated_at: 1,
    }
}

/// Budgets, their spend and two replicas' leases; shared token buckets.
async fn exercise_limits(store: &Store) {
    store
        .put_budget(&budget("tenant/acme/month", 1_000))
        .await
        .unwrap();
    // Setting it again replaces the limit, not a second row.
    store
        .put_budget(&budget("tenant/acme/month", 2_000))
        .await
        .unwrap();
    let all = store.list_budgets().await.unwrap();
    assert_eq!(all, vec![budget("tenant/acme/month", 2_000)]);

    let sync =
        |replica: &'static str, spent_delta: i64, reserved: i64, want_free: i64, now_ms: i64| {
            BudgetSync {
                budget_id: "tenant/acme/month",
                period_start: 100,
                replica,
                spent_delta,
                reserved,
                want_free,
                now_ms,
                lease_ms: 1_000,
                contend_until: 0,
            }
        };
    // Replica a asks for 1,500 free: granted, the whole limit being open.
    let a = store
        .sync_budget(&sync("a", 0, 0, 1_500, 10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.limit_micros, a.spent_micros, a.granted),
        (2_000, 0, 1_500)
    );
    // Replica b sees a's lease and gets only what is left.
    let b = store
        .sync_budget(&sync("b", 0, 100, 1_000, 20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((b.others_free, b.others, b.granted), (1_500, 1, 400));
    assert!(!b.contended);
    // b was short: it flags the budget contended for a while.
    let b = store
        .sync_budget(&BudgetSync {
            contend_until: 500,
            ..sync("b", 0, 100, 1_000, 25)
        })
        .await
        .unwrap()
        .unwrap();
    assert!(b.contended);
    assert_eq!(
        store.contended_budgets(30).await.unwrap(),
        vec!["tenant/acme/month".to_owned()]
    );
    assert!(store.contended_budgets(500).await.unwrap().is_empty());
    // a settles 300 of spend and gives back its free share.
    let a = store
        .sync_budget(&sync("a", 300, 0, 0, 30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.spent_micros, a.others_reserved, a.others_free),
        (300, 100, 400)
    );
    assert_eq!(
        store.budget_spent("tenant/acme/month", 100).await.unwrap(),
        300
    );
    // After b's lease expires (b died), it no longer holds anything.
    let a = store
        .sync_budget(&sync("a", 0, 0, 5_000, 2_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.others_reserved, a.others_free, a.granted), (0, 0, 1_700));
    assert_eq!(
        store.purge_budget_leases(2_500).await.unwrap(),
        1,
        "b's expired lease"
    );
    // A removed budget answers None and keeps no spend.
    assert!(store.delete_budget("tenant/acme/month").await.unwrap());
    assert!(
        store
            .sync_budget(&sync("a", 0, 0, 1, 3_000))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.budget_spent("tenant/acme/month", 100).await.unwrap(),
        0
    );

    // A bucket of 10 tokens (scaled by 60,000), refilling 10 a minute.
    let (cap, per_ms) = (10 * 60_000, 10);
    let t = store
        .take_tokens("key/k1/rpm", 4 * 60_000, cap, per_ms, 1_000)
        .await
        .unwrap();
    assert_eq!((t.granted, t.level), (4 * 60_000, 6 * 60_000));
    // Asking for more than is left grants what is left.
    let t = store
        .take_tokens("key/k1/rpm", 9 * 60_000, cap, per_ms, 1_000)
        .await
        .unwrap();
    assert_eq!((t.granted, t.level), (6 * 60_000, 0));
    // Six seconds refill one token.
    let t = store
        .take_tokens("key/k1/rpm", 60_000, cap, per_ms, 7_000)
        .await
        .unwrap();
    assert_eq!((t.granted, t.level), (60_000, 0));
    // A clock behind the row refills nothing.
    let t = store
        .take_tokens("key/k1/rpm", 60_000, cap, per_ms, 5_000)
        .await
        .unwrap();
    assert_eq!(t.granted, 0);
    // Giving back never fills beyond capacity.
    assert_eq!(
        store
            .give_tokens("key/k1/rpm", 3 * 60_000, cap, per_ms, 7_000)
            .await
            .unwrap(),
        3 * 60_000
    );
    assert_eq!(
        store
            .give_tokens("key/k1/rpm", 60 * 60_000, cap, per_ms, 7_000)
            .await
            .unwrap(),
        cap
    );
}

#[tokio::test]
async fn sqlite_keeps_budgets_leases_and_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.unwrap();
    exercise_limits(&store).await;
}

#[tokio::test]
async fn postgres_keeps_budgets_leases_and_buckets() {
    let Some(url) = crate::test_pg::fresh_database("limits").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    exercise_limits(&store).await;
    store.close().await;
    crate::test_pg::drop_database(&url).await;
}
