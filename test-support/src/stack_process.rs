//! The local stack (`fanout-local`) in a process of its own, for the examples that measure it
//! from outside: each side then has its own open-file budget, and the stack's RSS is its own.

use crate::net::{free_port, wait_for_port};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `fanout-local` on the embedded backend and a free port of 127.0.0.1; stopped when dropped.
pub struct StackProcess {
    child: Child,
    port: u16,
}

impl StackProcess {
    /// Starts `binary` (default: [`sibling_binary`]) with `extra` arguments after
    /// `--listen 127.0.0.1:PORT --backend memory`, logging warnings only, and waits for it to
    /// listen; panics if it does not within 30 s.
    pub fn start(binary: Option<PathBuf>, extra: &[String]) -> StackProcess {
        let binary = binary.unwrap_or_else(sibling_binary);
        let port = free_port();
        let child = Command::new(binary)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--backend",
                "memory",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start fanout-local");
        // Stopped by Drop if the wait panics.
        let stack = StackProcess { child, port };
        wait_for_port(port, Duration::from_secs(30))
            .unwrap_or_else(|error| panic!("fanout-local did not start: {error}"));
        stack
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The stack's WebSocket API, stage `local`: `ws://127.0.0.1:PORT/local`.
    pub fn websocket_url(&self) -> String {
        format!("ws://127.0.0.1:{}/local", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for StackProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `fanout-local` of the target directory the running example was built in
/// (`target/PROFILE/examples/NAME` → `target/PROFILE/fanout-local`); panics, saying how to
/// build it, if it is not there.
pub fn sibling_binary() -> PathBuf {
    std::env::current_exe()
        .expect("own path")
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("fanout-local"))
        .filter(|path| path.exists())
        .expect(
            "fanout-local is not built: cargo build --release -p fanout-local --bins --examples",
        )
}
