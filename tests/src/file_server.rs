//! A static file server on loopback, as a plugin's download site would be: it serves the
//! files the test puts (`404` for others) and records each path asked for.

use axum::Router;
use axum::http::{StatusCode, Uri};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    asked: Vec<String>,
}

/// The running server.
#[derive(Clone)]
pub struct FileServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FileServer {
    /// Starts a server with no files.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        let app = Router::new().fallback(move |uri: Uri| {
            let state = shared.clone();
            async move {
                let mut state = state.lock().unwrap();
                state.asked.push(uri.path().to_owned());
                match state.files.get(uri.path()) {
                    Some(bytes) => (StatusCode::OK, bytes.clone()),
                    None => (StatusCode::NOT_FOUND, b"not found".to_vec()),
                }
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// Serves `bytes` at `path` (`/plugin.wasm`) from now on.
    pub fn put(&self, path: &str, bytes: &[u8]) {
        self.state.lock().unwrap().files.insert(path.to_owned(), bytes.to_vec());
    }

    /// Stops serving `path`.
    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().files.remove(path);
    }

    /// The paths asked for so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.state.lock().unwrap().asked.clone()
    }
}
