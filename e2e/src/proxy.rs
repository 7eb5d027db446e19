//! A TCP proxy on loopback in front of one API server, which a test can black-hole: one
//! operator replica talks to the host through it, so the test cuts that replica (and only it)
//! off the host while the members stay reachable.
//!
//! Cut is the worst case for a leader, not a clean refusal: open connections stay open and
//! silently swallow nothing and answer nothing (requests hang), and new connections are accepted
//! and then left hanging too, as a dropped route looks from the client.
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The running proxy; stops (with its runtime thread) when dropped.
pub struct BlackHoleProxy {
    /// The loopback port to connect to instead of the upstream.
    pub port: u16,
    cut: watch::Sender<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl BlackHoleProxy {
    /// Starts forwarding 127.0.0.1:<port> to `upstream` on a thread of its own (tests block
    /// their own thread in places, which must not stall the proxy).
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("bound").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let (cut, cut_rx) = watch::channel(false);
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    () = accept_loop(listener, upstream, cut_rx) => {}
                    _ = stop_rx => {}
                }
            });
            // Dropping the runtime drops every connection.
            runtime.shutdown_timeout(Duration::from_millis(100));
        });
        Self {
            port,
            cut,
            stop: Some(stop),
        }
    }

    /// Black-holes every connection, open and new.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    /// Forwards again (new connections; the cut ones stay dead).
    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }
}

impl Drop for BlackHoleProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, cut: watch::Receiver<bool>) {
    while let Ok((client, _)) = listener.accept().await {
        let cut = cut.clone();
        tokio::spawn(async move {
            if *cut.borrow() {
                hold(client).await;
                return;
            }
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            forward(client, server, cut).await;
        });
    }
}

/// Copies both ways until either side closes, or holds both open in silence once cut.
async fn forward(mut client: TcpStream, mut server: TcpStream, mut cut: watch::Receiver<bool>) {
    let was_cut = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
        seen = cut.wait_for(|c| *c) => seen.is_ok(),
    };
    if was_cut {
        futures::future::pending::<()>().await;
    }
}

async fn hold(_client: TcpStream) {
    futures::future::pending::<()>().await;
}
