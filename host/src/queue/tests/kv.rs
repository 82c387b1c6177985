//! Plugins' key-value stores on both stores: versions, compare-and-swap (also between two
//! queues sharing one PostgreSQL database), bounds, expiry, listings in byte order.

use super::*;
use crate::grant::KvLimits;
use crate::queue::kv::{KvError, KvWrite};
use std::time::Duration;

const ROOMY: KvLimits = KvLimits { max_entries: 1_000, max_bytes: 1 << 20, max_value: 1 << 10 };

fn write(key: &str, value: &[u8]) -> KvWrite {
    KvWrite { key: key.into(), value: value.to_vec(), ttl: None }
}

#[tokio::test]
async fn versions_grow_and_never_repeat_after_a_delete() {
    for store in stores() {
        let queue = store.open("n");
        let first = queue.kv_set("s", ROOMY, write("k", b"1")).await.unwrap();
        let second = queue.kv_set("s", ROOMY, write("k", b"2")).await.unwrap();
        assert!(second > first);
        assert!(queue.kv_delete("s", "k").await.unwrap());
        assert!(!queue.kv_delete("s", "k").await.unwrap(), "already gone");
        assert_eq!(queue.kv_get("s", "k").await.unwrap(), None);
        let third = queue.kv_set("s", ROOMY, write("k", b"3")).await.unwrap();
        assert!(third > second, "{third} after {second}");
        let entry = queue.kv_get("s", "k").await.unwrap().unwrap();
        assert_eq!((entry.value.as_slice(), entry.version), (&b"3"[..], third));
        // Another store's key of the same name is another entry.
        assert_eq!(queue.kv_get("t", "k").await.unwrap(), None);
    }
}

#[tokio::test]
async fn compare_and_swap_writes_only_what_it_expected() {
    for store in stores() {
        let queue = store.open("n");
        let created = queue.kv_compare_and_swap("s", ROOMY, None, write("k", b"a")).await.unwrap();
        let created = created.expect("no entry: created");
        assert_eq!(queue.kv_compare_and_swap("s", ROOMY, None, write("k", b"b")).await.unwrap(), None);
        assert_eq!(queue.kv_compare_and_swap("s", ROOMY, Some(created + 1), write("k", b"b")).await.unwrap(), None);
        assert_eq!(queue.kv_compare_and_swap("s", ROOMY, Some(u64::MAX), write("k", b"b")).await.unwrap(), None);
        let swapped = queue.kv_compare_and_swap("s", ROOMY, Some(created), write("k", b"b")).await.unwrap();
        assert!(swapped.is_some_and(|v| v > created));
        assert_eq!(queue.kv_get("s", "k").await.unwrap().unwrap().value, b"b");
        assert_eq!(queue.kv_compare_and_swap("s", ROOMY, Some(7), write("absent", b"x")).await.unwrap(), None);
        assert_eq!(queue.kv_get("s", "absent").await.unwrap(), None);
    }
}

#[tokio::test]
async fn expired_entries_read_as_absent_and_are_swept() {
    for store in stores() {
        let queue = store.open("n");
        let short = KvWrite { ttl: Some(Duration::from_millis(1)), ..write("gone", b"x") };
        let version = queue.kv_set("s", ROOMY, short.clone()).await.unwrap();
        queue
            .kv_set("s", ROOMY, KvWrite { ttl: Some(Duration::from_secs(3600)), ..write("kept", b"y") })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(queue.kv_get("s", "gone").await.unwrap(), None);
        let keys: Vec<String> = queue.kv_list("s", "", None, 10).await.unwrap().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["kept"]);
        assert!(!queue.kv_delete("s", "gone").await.unwrap(), "an expired entry was not there");
        // Expected absent: an expired entry does not count.
        queue.kv_set("s", ROOMY, short).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let taken = queue.kv_compare_and_swap("s", ROOMY, None, write("gone", b"z")).await.unwrap();
        assert!(taken.is_some_and(|v| v > version));
        queue.kv_set("s", ROOMY, KvWrite { ttl: Some(Duration::from_millis(1)), ..write("old", b"x") }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(queue.kv_sweep().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn a_full_store_refuses_and_keeps_what_it_had() {
    for store in stores() {
        let queue = store.open("n");
        let small = KvLimits { max_entries: 2, max_bytes: 10, max_value: 8 };
        queue.kv_set("s", small, write("a", b"12345")).await.unwrap();
        queue.kv_set("s", small, write("b", b"123")).await.unwrap();
        let more = queue.kv_set("s", small, write("c", b"1")).await;
        assert!(matches!(more, Err(KvError::Quota(_))), "{more:?}");
        let larger = queue.kv_set("s", small, write("b", b"123456")).await;
        assert!(matches!(larger, Err(KvError::Quota(_))), "{larger:?}");
        let swapped = queue.kv_compare_and_swap("s", small, None, write("c", b"1")).await;
        assert!(matches!(swapped, Err(KvError::Quota(_))), "{swapped:?}");
        let too_long = queue.kv_set("s", small, write("a", b"123456789")).await;
        assert!(matches!(too_long, Err(KvError::Invalid(_))), "{too_long:?}");
        // Unchanged; replacing within the bounds (the replaced value does not count) works.
        assert_eq!(queue.kv_get("s", "b").await.unwrap().unwrap().value, b"123");
        assert_eq!(queue.kv_get("s", "c").await.unwrap(), None);
        queue.kv_set("s", small, write("b", b"12345")).await.unwrap();
        // An expired entry makes room once swept, which a full store does itself.
        queue.kv_set("s", small, KvWrite { ttl: Some(Duration::from_millis(1)), ..write("a", b"1") }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        queue.kv_set("s", small, write("c", b"1")).await.unwrap();
        let keys: Vec<String> = queue.kv_list("s", "", None, 10).await.unwrap().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["b", "c"]);
        // A delete makes room too (what the store is known to hold is counted again).
        assert!(queue.kv_delete("s", "b").await.unwrap());
        queue.kv_set("s", small, write("d", b"12345678")).await.unwrap();
        assert!(matches!(queue.kv_set("s", small, write("e", b"")).await, Err(KvError::Quota(_))));
    }
}

#[tokio::test]
async fn listings_are_in_byte_order_by_prefix_and_page_and_wildcards_are_literal() {
    for store in stores() {
        let queue = store.open("n");
        for key in ["B", "a", "é", "Z", "a%b", "a_b", "axb", "a%", "ab", "a\u{10ffff}x", "b"] {
            queue.kv_set("s", ROOMY, write(key, b"")).await.unwrap();
        }
        queue.kv_set("other", ROOMY, write("a%b", b"")).await.unwrap();
        let list = |prefix: &'static str, after: Option<&'static str>, limit: u32| {
            let queue = queue.clone();
            async move {
                let listed = queue.kv_list("s", prefix, after, limit).await.unwrap();
                listed.into_iter().map(|e| e.key).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list("", None, 100).await,
            ["B", "Z", "a", "a%", "a%b", "a_b", "ab", "axb", "a\u{10ffff}x", "b", "é"]
        );
        assert_eq!(list("a%", None, 100).await, ["a%", "a%b"]);
        assert_eq!(list("a_", None, 100).await, ["a_b"]);
        assert_eq!(list("a", Some("a_b"), 2).await, ["ab", "axb"]);
        assert_eq!(list("a", Some("axb"), 100).await, ["a\u{10ffff}x"]);
        assert_eq!(list("", Some("b"), 100).await, ["é"]);
        assert_eq!(list("a", None, 0).await, Vec::<String>::new());
        assert!(matches!(queue.kv_list("s", "", None, 1001).await, Err(KvError::Invalid(_))));
    }
}

/// Two daemons sharing one PostgreSQL database: each round, both try to move the same
/// version on; exactly one wins, and the entry holds the winner's value.
#[tokio::test]
async fn racing_compare_and_swaps_on_one_postgresql_database_have_one_winner_each_round() {
    let Some(url) = crate::testing::database() else { return };
    let store = Store::Postgres(url);
    let (a, b) = (store.open("a"), store.open("b"));
    let mut version = a.kv_set("s", ROOMY, write("k", b"start")).await.unwrap();
    for round in 0..50 {
        let (won_a, won_b) = tokio::join!(
            a.kv_compare_and_swap("s", ROOMY, Some(version), write("k", format!("a{round}").as_bytes())),
            b.kv_compare_and_swap("s", ROOMY, Some(version), write("k", format!("b{round}").as_bytes())),
        );
        let (won_a, won_b) = (won_a.unwrap(), won_b.unwrap());
        assert!(won_a.is_some() != won_b.is_some(), "round {round}: {won_a:?} {won_b:?}");
        let (winner, new) = if let Some(v) = won_a { ("a", v) } else { ("b", won_b.unwrap()) };
        let entry = b.kv_get("s", "k").await.unwrap().unwrap();
        assert_eq!((entry.value, entry.version), (format!("{winner}{round}").into_bytes(), new));
        version = new;
    }
    // Creating: one of two `expected none` writers wins.
    let (one, two) = tokio::join!(
        a.kv_compare_and_swap("s", ROOMY, None, write("new", b"a")),
        b.kv_compare_and_swap("s", ROOMY, None, write("new", b"b")),
    );
    assert!(one.unwrap().is_some() != two.unwrap().is_some());
}
