//! One lifecycle for the server's background work (sweeper, store prober, later a NOTIFY
//! listener and a mail sender) and its long-lived response streams.
//!
//! Shutdown happens in two steps, because streams must end before the API drains while
//! background tasks keep running until it has drained:
//! 1. [`Lifecycle::end_streams`] cancels every [`Lifecycle::stream_token`], so open streams
//!    end with a clear status instead of holding the drain until its deadline;
//! 2. [`Lifecycle::stop`] cancels every [`Lifecycle::token`] (stream tokens too), lets no
//!    new task start, and waits for the spawned tasks to finish.

use std::{future::Future, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Owns the cancellation tokens and tracks the tasks; cheap to share by reference.
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// Cancelled by `stop`: the parent of every token handed out.
    background: CancellationToken,
    /// Cancelled by `end_streams`, before the drain; a child of `background`.
    streams: CancellationToken,
    /// Every spawned task, so `stop` can wait for them.
    tasks: TaskTracker,
}

impl Lifecycle {
    pub fn new() -> Self {
        let background = CancellationToken::new();
        Self {
            streams: background.child_token(),
            background,
            tasks: TaskTracker::new(),
        }
    }

    /// A token for a background task: cancelled by `stop`, or earlier by its holder when
    /// the task must stop before the others (the prober, before health turns NOT_SERVING).
    pub fn token(&self) -> CancellationToken {
        self.background.child_token()
    }

    /// A token for a response stream: cancelled by `end_streams`.
    pub fn stream_token(&self) -> CancellationToken {
        self.streams.child_token()
    }

    /// Runs `task` until it returns; `stop` waits for it. The task stops itself when the
    /// token it was given is cancelled.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Ends every open stream (step 1 of shutdown).
    pub fn end_streams(&self) {
        self.streams.cancel();
    }

    /// Cancels every token, refuses new tasks and waits up to `within` for the spawned
    /// ones (step 2 of shutdown). A task still running after that is left to the runtime's
    /// end; it is logged, not awaited, so one stuck task cannot hold the process.
    pub async fn stop(&self, within: Duration) {
        self.background.cancel();
        self.tasks.close();
        if tokio::time::timeout(within, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.tasks.len(),
                timeout = ?within,
                "background tasks did not stop in time"
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn streams_end_first_and_stop_waits_for_tasks() {
        let lifecycle = Lifecycle::new();
        let stream = lifecycle.stream_token();
        let token = lifecycle.token();
        let finished = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&finished);
        lifecycle.spawn(async move {
            token.cancelled().await;
            // Cleanup after cancellation still completes before `stop` returns.
            tokio::task::yield_now().await;
            done.store(true, Ordering::SeqCst);
        });

        lifecycle.end_streams();
        assert!(stream.is_cancelled());
        assert!(
            !finished.load(Ordering::SeqCst),
            "background work outlives the streams"
        );

        lifecycle.stop(Duration::from_secs(10)).await;
        assert!(finished.load(Ordering::SeqCst));
        assert!(
            lifecycle.stream_token().is_cancelled(),
            "late streams end at once"
        );
    }

    #[tokio::test]
    async fn a_task_that_ignores_cancellation_does_not_hold_stop() {
        let lifecycle = Lifecycle::new();
        lifecycle.spawn(std::future::pending());
        tokio::time::timeout(
            Duration::from_secs(10),
            lifecycle.stop(Duration::from_millis(50)),
        )
        .await
        .expect("stop returns after its deadline");
    }
}
