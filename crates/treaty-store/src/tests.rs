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
