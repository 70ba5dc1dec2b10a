//! Ports on loopback for servers a test or an example starts in another process.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A port that nothing listened on a moment ago, for a child process to bind.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port on 127.0.0.1")
        .port()
}

/// Waits until something accepts connections on `127.0.0.1:port`, trying every 50 ms for at
/// most `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("nothing listens on 127.0.0.1:{port} after {timeout:?}: {error}"),
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_listener_and_gives_up_without_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        wait_for_port(port, Duration::from_secs(5)).expect("a listener is found");
        drop(listener);

        let error = wait_for_port(free_port(), Duration::from_millis(100)).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
    }
}
