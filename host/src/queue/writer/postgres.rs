//! The PostgreSQL writer: one thread owns the connection.

use super::{Conn, Message, Writer, run};
use crate::queue::db::{Db, PgConn};
use std::cell::RefCell;
use std::sync::{Arc, mpsc};

impl Writer {
    /// Starts the thread that connects to the PostgreSQL database at `url`, runs `setup` on
    /// the connection (migrations), and then serves requests; returns once `setup` is done.
    pub fn start_postgres(
        url: String,
        setup: impl FnOnce(Db<'_>) -> anyhow::Result<()> + Send + 'static,
    ) -> anyhow::Result<Self> {
        let (ready, started) = mpsc::sync_channel::<anyhow::Result<()>>(1);
        let (sender, receiver) = mpsc::channel::<Message>();
        std::thread::Builder::new().name("gitauto-postgres".into()).spawn(move || {
            let conn = match crate::queue::pg_connect::connect(&url) {
                Ok(client) => Conn::Postgres(Box::new(RefCell::new(PgConn::new(client)))),
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return;
                }
            };
            let set_up = setup(conn.db());
            let failed = set_up.is_err();
            let _ = ready.send(set_up);
            if failed {
                return;
            }
            let closed = run(&conn, receiver, None);
            drop(conn);
            if let Some(closed) = closed {
                let _ = closed.send(());
            }
        })?;
        started.recv().map_err(|_| anyhow::anyhow!("the PostgreSQL connection thread stopped"))??;
        Ok(Self { sender, closed: Arc::default() })
    }
}
