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
        agent_id: "agent_1".into(),
        conversation_id: "conv_1".into(),
        status: "queued".into(),
        created_at,
        updated_at: created_at,
        lease_owner: None,
        lease_until: 0,
        body: "{}".into(),
    };
    store.insert_run(&run("run_1", 10)).await.unwrap();
    store.insert_run(&run("run_2", 11)).await.unwrap();
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
            .save_run("run_1", "w1", "completed", "{}", 202, 0)
            .await
            .unwrap()
    );
    assert!(
        store
            .save_run("run_1", "w3", "requires_action", "{\"s\":1}", 203, 0)
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
                "queued",
                "{\"s\":2}",
                401
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .transition_run("dod", "run_1", &["queued"], "cancelled", "{}", 402)
            .await
            .unwrap()
    );
    assert_eq!(
        store.claim_run("w5", 402, 600).await.unwrap().unwrap().body,
        "{\"s\":2}"
    );
    assert_eq!(
        store
            .list_runs("acme", None, None, Order::Asc, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .list_runs("dod", None, None, Order::Asc, 10)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        store.append_run_event("run_1", "a", 1, "{}").await.unwrap(),
        1
    );
    assert_eq!(
        store.append_run_event("run_1", "b", 2, "{}").await.unwrap(),
        2
    );
    let ev = store.run_events("run_1", 1).await.unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, "b");
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
