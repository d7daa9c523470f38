//! One shutdown trigger shared by the HTTP server, the reconciler and the simulator:
//! SIGINT, SIGTERM or [`crate::ServerHandle::shutdown`].

use tokio::sync::watch;

/// Fires once; every clone observes it.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    sender: watch::Sender<bool>,
}

impl Default for ShutdownSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownSignal {
    /// A signal that has not fired.
    pub fn new() -> Self {
        let (sender, _) = watch::channel(false);
        Self { sender }
    }

    /// Fires the signal (idempotent).
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Whether it has fired.
    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves once the signal fires.
    pub async fn fired(&self) {
        let mut receiver = self.sender.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = receiver.wait_for(|fired| *fired).await;
    }

    /// Fires the signal on SIGINT (Ctrl-C) or SIGTERM.
    pub fn trigger_on_os_signals(&self) {
        let signal = self.clone();
        tokio::spawn(async move {
            let ctrl_c = async {
                if let Err(err) = tokio::signal::ctrl_c().await {
                    tracing::warn!(error = %err, "cannot listen for Ctrl-C");
                    std::future::pending::<()>().await;
                }
            };
            #[cfg(unix)]
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut stream) => {
                        stream.recv().await;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot listen for SIGTERM");
                        std::future::pending::<()>().await;
                    }
                }
            };
            #[cfg(not(unix))]
            let terminate = std::future::pending::<()>();
            tokio::select! {
                () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
                () = terminate => tracing::info!("SIGTERM received, shutting down"),
                () = signal.fired() => return,
            }
            signal.trigger();
        });
    }
}
