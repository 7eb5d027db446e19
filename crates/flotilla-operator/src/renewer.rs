//! The leader's Lease renewals, on a thread of their own with a host connection of their own.
//!
//! Under load (a thousand objects being reconciled, debug logging of every write) renewals that
//! shared the controllers' runtime workers and host client queued behind their requests, and the
//! leader missed its renew deadline: fenced, it exited, and leadership churned. A renewal now
//! waits for nothing the controllers do. The guard it extends is shared, so every writer still
//! checks the same deadline.
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use flotilla_controller::LeaseGuard;

use crate::leader::LeaderElection;

/// The renewal thread of the current term.
pub struct Renewer {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Renewer {
    /// Renews `election`'s Lease on a new thread with a client built from `config`, extending
    /// `guard`; `lost` runs (on that thread) when another replica holds the Lease.
    pub fn spawn(
        mut election: LeaderElection,
        config: kube::Config,
        guard: LeaseGuard,
        lost: fn() -> !,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("lease-renewer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the Lease renewal runtime");
                        guard.lapse();
                        lost();
                    }
                };
                runtime.block_on(async move {
                    // Built here, so its connections live on this thread's runtime.
                    match kube::Client::try_from(config) {
                        Ok(client) => election.rebind(client),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot build a host client of its own for the Lease; renewing with the shared one");
                        }
                    }
                    tokio::select! {
                        () = election.hold(&guard) => lost(),
                        _ = stopped => election.release().await,
                    }
                });
            })?;
        Ok(Self { stop, thread })
    }

    /// Gives the Lease up and waits for the thread. The caller lapses the guard first.
    pub async fn release(self) {
        let _ = self.stop.send(());
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}
