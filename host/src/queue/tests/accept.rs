//! Accepting deliveries as issue 23 changed it: bodies stored compressed and read back as
//! received (rows written before the change too), and accepts sharing a batch's
//! transaction without a savepoint each, on both stores.

use super::*;

/// A GitHub-like JSON body of about 8 KB (compressible, as real ones are).
fn big_body() -> bytes::Bytes {
    let commits: Vec<serde_json::Value> = (0..100)
        .map(|n| serde_json::json!({"id": format!("{n:040x}"), "message": format!("commit {n}"), "added": ["a.md"]}))
        .collect();
    serde_json::to_vec(&serde_json::json!({"ref": "refs/heads/main", "commits": commits})).unwrap().into()
}

/// Holds the queue's writer until the returned sender is used, so that whatever is
/// submitted meanwhile lands in one batch.
async fn hold_writer(queue: &Queue) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (holding, held) = tokio::sync::oneshot::channel();
    let writer = queue.writer.clone();
    let task = tokio::spawn(async move {
        writer
            .call(move |_| {
                let _ = holding.send(());
                let _ = released.recv();
                Ok(())
            })
            .await
            .unwrap();
    });
    held.await.unwrap();
    (release, task)
}

/// A column of the delivery recorded as `seq`, read directly.
async fn column<T: db::Column + Send + 'static>(queue: &Queue, name: &'static str, seq: i64) -> T {
    let sql = format!("SELECT {name} FROM deliveries WHERE seq = ?1");
    queue.writer.call(move |db| db.query_one(&sql, args![seq], |row| row.get(0))).await.unwrap()
}

#[tokio::test]
async fn a_compressed_body_reads_back_as_received_in_the_record_a_redelivery_and_a_claim() {
    let body = big_body();
    for store in stores() {
        let queue = store.open("n");
        let stored = StoredBody::new(body.clone());
        assert_eq!(stored.encoding(), Some(body::LZ4));
        queue.accept(NewDelivery { body: stored, ..delivery("big") }, vec![job("k")]).await.unwrap();
        let view = queue.delivery("big".into()).await.unwrap().unwrap();
        assert_eq!(view.body.as_deref().map(str::as_bytes), Some(&body[..]), "the API shows the body as received");
        let seq = view.summary.seq;
        assert_eq!(column::<Option<String>>(&queue, "body_encoding", seq).await.as_deref(), Some("lz4"));
        let kept: Vec<u8> = column(&queue, "body", seq).await;
        assert!(kept.len() * 4 < body.len(), "stored {} bytes of {}", kept.len(), body.len());
        assert_eq!(queue.stored("big".into()).await.unwrap().unwrap().body, body, "a redelivery runs it as received");
        assert_eq!(queue.claim().await.unwrap().unwrap().body, body, "a job's payload is the body as received");
        queue.close().await;
    }
}

/// Refused deliveries keep the start of their body as received, whatever it came as.
#[tokio::test]
async fn a_refused_compressed_body_is_kept_cut_and_as_received() {
    let body: bytes::Bytes = big_body().repeat(REFUSED_BODY_KEPT / 4096).into();
    assert!(body.len() > REFUSED_BODY_KEPT);
    for store in stores() {
        let queue = store.open("n");
        let refused =
            NewDelivery { verdict: DeliveryVerdict::Rejected, body: StoredBody::new(body.clone()), ..delivery("bad") };
        queue.accept(refused, Vec::new()).await.unwrap();
        let view = queue.delivery("bad".into()).await.unwrap().unwrap();
        assert_eq!(view.body.as_deref().map(str::as_bytes), Some(&body[..REFUSED_BODY_KEPT]));
        assert_eq!(view.body_size, Some(body.len() as i64));
        assert_eq!(column::<Option<String>>(&queue, "body_encoding", view.summary.seq).await, None);
        queue.close().await;
    }
}

/// A store written before bodies were compressed (SQLite schema 11, PostgreSQL 8) opens
/// migrated, and its raw bodies read as they are.
#[tokio::test]
async fn a_store_of_the_previous_schema_with_raw_bodies_reads_after_migration() {
    let body = big_body();
    let hex = hex::encode(&body);
    for store in stores() {
        let literal = match &store {
            Store::Sqlite(dir) => {
                let conn = Connection::open(dir.path().join("gitauto.sqlite")).unwrap();
                for (from, sql) in MIGRATIONS[..11].iter().enumerate() {
                    conn.execute_batch(&format!("{sql}; PRAGMA user_version = {};", from + 1)).unwrap();
                }
                format!("X'{hex}'")
            }
            Store::Postgres(url) => {
                let mut sql = String::from("CREATE TABLE gitauto_schema (version BIGINT NOT NULL);");
                for (from, migration) in POSTGRES_MIGRATIONS[..8].iter().enumerate() {
                    sql.push_str(&format!("{migration}; INSERT INTO gitauto_schema VALUES ({});", from + 1));
                }
                crate::testing::execute(url, &sql);
                format!("'\\x{hex}'::bytea")
            }
        };
        store.execute(&format!(
            "INSERT INTO deliveries (seq, id, source, forge, received_at, headers, body, verdict, normalised)
                 VALUES (1, 'old', 'github', 'github', 1, '{{\"content-type\":\"application/json\"}}', {literal},
                         'queued', '[{{}}]');
             INSERT INTO jobs (id, delivery_seq, rule, key, repo, state, attempts, created_at, max_attempts)
                 VALUES (1, 1, 'r', 'k', 'acme/widgets', 'queued', 0, 1, 1);
             INSERT INTO job_deliveries (job_id, delivery_seq, event_index, at) VALUES (1, 1, 0, 1);"
        ));
        let queue = store.open("n");
        let view = queue.delivery("old".into()).await.unwrap().unwrap();
        assert_eq!(view.body.as_deref().map(str::as_bytes), Some(&body[..]));
        assert_eq!(queue.stored("old".into()).await.unwrap().unwrap().body, body);
        let claimed = queue.claim().await.unwrap().unwrap();
        assert_eq!((claimed.body, claimed.content_type.as_deref()), (body.to_vec(), Some("application/json")));
        // New rows beside the old ones are compressed.
        queue.accept(NewDelivery { body: StoredBody::new(body.clone()), ..delivery("new") }, Vec::new()).await.unwrap();
        assert_eq!(queue.stored("new".into()).await.unwrap().unwrap().body, body);
        queue.close().await;
    }
}

/// Two deliveries with one id in one batch: the first is accepted, the second recorded
/// as its duplicate, though neither was committed when the second looked. (On PostgreSQL
/// the two may be taken by two accepting connections, which commit in either order: one
/// is the original and the other its duplicate.)
#[tokio::test]
async fn a_duplicate_in_the_same_batch_is_recorded_as_a_duplicate_of_the_first() {
    for store in stores() {
        let queue = store.open("n");
        let (release, held) = hold_writer(&queue).await;
        let (first, second, ()) = tokio::join!(
            biased;
            queue.accept(delivery("twice"), vec![job("k")]),
            queue.accept(delivery("twice"), vec![job("k")]),
            async { release.send(()).unwrap() },
        );
        held.await.unwrap();
        let (mut first, mut second) = (first.unwrap(), second.unwrap());
        if matches!(store, Store::Postgres(_)) && first.duplicate {
            std::mem::swap(&mut first, &mut second);
        }
        assert!(!first.duplicate && second.duplicate, "{first:?} {second:?}");
        assert_eq!(second.jobs, first.jobs);
        let listed = queue.deliveries(DeliveryFilter { limit: 10, ..Default::default() }).await.unwrap();
        let verdicts: Vec<(&str, &str)> = listed.iter().map(|d| (d.id.as_str(), d.verdict.as_str())).collect();
        assert_eq!(verdicts, [("twice", "duplicate"), ("twice", "queued")]);
        let duplicate = queue.delivery(listed[0].seq.to_string()).await.unwrap().unwrap();
        assert_eq!(duplicate.duplicate_of, Some(listed[1].seq));
        assert_eq!(queue.pending().await.unwrap().len(), 1);
        queue.close().await;
    }
}

/// An accept that fails half-way in a batch of accepts loses its own work only (the
/// delivery it had recorded too); the others commit. Both ways a batch runs them: opening
/// its transaction, and after another request.
#[tokio::test]
async fn an_accept_failing_in_a_batch_loses_only_its_own_work() {
    for store in stores() {
        let queue = store.open("n");
        store.execute(match store {
            Store::Sqlite(_) => {
                "CREATE TRIGGER refuse BEFORE INSERT ON jobs WHEN NEW.key = 'bad'
                 BEGIN SELECT RAISE(ABORT, 'job refused'); END;"
            }
            Store::Postgres(_) => {
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'job refused'; END $$;
                 CREATE TRIGGER refuse BEFORE INSERT ON jobs FOR EACH ROW
                 WHEN (NEW.key = 'bad') EXECUTE FUNCTION refuse();"
            }
        });
        for lead in [false, true] {
            let tag = if lead { "after" } else { "opening" };
            let (release, held) = hold_writer(&queue).await;
            let leading = async {
                if lead {
                    queue.writer.call(|_| Ok(())).await.unwrap();
                }
            };
            let (_, ok, bad, also_ok, ()) = tokio::join!(
                biased;
                leading,
                queue.accept(delivery(&format!("{tag}-1")), vec![job(&format!("{tag}-1"))]),
                queue.accept(delivery(&format!("{tag}-2")), vec![job("bad")]),
                queue.accept(delivery(&format!("{tag}-3")), vec![job(&format!("{tag}-3"))]),
                async { release.send(()).unwrap() },
            );
            held.await.unwrap();
            let err = bad.unwrap_err();
            assert!(format!("{err:#}").contains("job refused"), "{err:#}");
            assert_eq!(ok.unwrap().jobs.len(), 1, "{tag}");
            assert_eq!(also_ok.unwrap().jobs.len(), 1, "{tag}");
            assert!(queue.delivery(format!("{tag}-2")).await.unwrap().is_none(), "{tag}: its delivery is undone");
            for kept in [1, 3] {
                let view = queue.delivery(format!("{tag}-{kept}")).await.unwrap();
                assert_eq!(view.map(|d| d.summary.jobs.len()), Some(1), "{tag}-{kept}");
            }
        }
        assert_eq!(queue.pending().await.unwrap().len(), 4);
        queue.close().await;
    }
}

/// On PostgreSQL several connections accept at once. Two that both find no queued job for
/// a coalescing key (a worker has just started it) both insert one, and the index of
/// queued keys refuses the later: that delivery is accepted again and coalesces, so no
/// accept fails and every delivery reaches a job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accepts_racing_each_other_and_workers_over_one_coalescing_key_all_succeed() {
    let Some(url) = crate::testing::database() else { return };
    let queue = Queue::open_postgres_with(&url, "n", 8).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (queue, stop) = (queue.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match queue.claim().await.unwrap() {
                        Some(job) => queue.finish(job.id, 1, None, JobState::Succeeded, "ok", None).await.unwrap(),
                        None => tokio::task::yield_now().await,
                    }
                }
            })
        })
        .collect();
    // Senders that each wait for their answer keep the groups small and many.
    const SENDERS: usize = 16;
    const EACH: usize = 100;
    let senders = (0..SENDERS).map(|sender| {
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut failed = Vec::new();
            for n in 0..EACH {
                let keyed = NewJob { coalesce_key: Some("k".into()), ..job("k") };
                if let Err(err) = queue.accept(delivery(&format!("d{sender}-{n}")), vec![keyed]).await {
                    failed.push(format!("{err:#}"));
                }
            }
            failed
        })
    });
    let failed: Vec<String> =
        futures_util::future::join_all(senders).await.into_iter().flat_map(|failed| failed.unwrap()).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let all = SENDERS * EACH;
    assert!(failed.is_empty(), "{} of {all} accepts failed, the first: {:?}", failed.len(), failed.first());
    let linked: i64 = queue
        .writer
        .call(|db| db.query_one("SELECT count(DISTINCT delivery_seq) FROM job_deliveries", args![], |row| row.get(0)))
        .await
        .unwrap();
    assert_eq!(linked, all as i64, "every delivery reached a job");
    queue.close().await;
}
