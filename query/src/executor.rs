//! Query work on threads of its own.
//!
//! DataFusion operators are CPU-bound and some run long inside one poll; on the runtime that
//! also serves OTLP, health checks and the WAL, two such queries on a 2-core machine hold every
//! worker thread and ingest stops. So every query runs on a [`QueryExecutor`]: a tokio runtime
//! with its own threads (at a lower scheduling priority on Linux, so ingest wins the cores when
//! both want them), the pattern of InfluxDB 3's `DedicatedExecutor`. The caller's runtime only
//! waits for the answer.
//!
//! A query's task is aborted when its caller stops waiting (time limit, client gone, shutdown):
//! DataFusion's operators give their task back to the scheduler between batches (tokio's
//! cooperative budget), where the abort takes effect and the plan is dropped, which stops the
//! tasks it spawned.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use crate::cancel::Cancel;
use crate::{Error, Result};

/// The nice value of query threads: CFS then gives a busy ingest thread about nine times the
/// CPU of a busy query thread, and queries still get all of it when ingest is idle.
pub const QUERY_THREAD_NICE: i32 = 10;

tokio::task_local! {
    /// Set while a query's own future runs: queries started from inside it (the call-chain
    /// table functions plan queries of their own) run inline, already admitted and timed, and
    /// stop with it.
    static IN_QUERY: Cancel;
}

/// The cancellation of the query running on a [`QueryExecutor`] that calls this, if any.
pub fn in_query() -> Option<Cancel> {
    IN_QUERY.try_with(Cancel::clone).ok()
}

/// A tokio runtime for query work only. Cloning shares it; it stops when [`Self::shutdown`]
/// is called or the last clone is dropped.
#[derive(Clone)]
pub struct QueryExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    runtime: Mutex<Option<Runtime>>,
    stopped: AtomicBool,
    /// Tells the callers waiting for a query that it will not answer.
    stop: watch::Sender<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads; one stuck in a long poll would hold up
        // whoever drops the last clone, maybe a task of another runtime, which tokio forbids.
        if let Some(runtime) = self.runtime.lock().take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for QueryExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryExecutor")
            .field("threads", &self.inner.handle.metrics().num_workers())
            .field("stopped", &self.inner.stopped.load(Ordering::Relaxed))
            .finish()
    }
}

impl QueryExecutor {
    /// A runtime of `threads` worker threads named `spanlake-query`.
    pub fn new(threads: usize) -> Result<Self> {
        // Computed here, on a thread of the caller's: the runtime's blocking threads are
        // started by its workers and inherit their nice value.
        let nice = query_nice();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("spanlake-query")
            .on_thread_start(move || set_nice(nice))
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the query threads: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                handle: runtime.handle().clone(),
                runtime: Mutex::new(Some(runtime)),
                stopped: AtomicBool::new(false),
                stop: watch::Sender::new(false),
            }),
        })
    }

    /// Runs `work`, the query `cancel` stops, on the query threads and waits for it. Dropping
    /// the returned future (the caller's time limit, a client that went away) aborts the work.
    pub async fn run<T, F>(&self, cancel: Cancel, work: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let mut stop = self.inner.stop.subscribe();
        if self.is_stopped() {
            return Err(Error::ShuttingDown);
        }
        let task = AbortOnDrop(self.inner.handle.spawn(IN_QUERY.scope(cancel, work)));
        tokio::select! {
            joined = task.join() => match joined {
                Ok(result) => result,
                Err(e) if e.is_cancelled() => Err(Error::ShuttingDown),
                Err(e) => Err(Error::Internal(format!("query task failed: {e}"))),
            },
            _ = stop.wait_for(|stopped| *stopped) => Err(Error::ShuttingDown),
        }
    }

    /// Refuses new work and cancels what runs: every task is dropped at its next yield, and
    /// its caller answered at once. A task stuck inside one poll keeps its thread until the
    /// poll returns, but nobody waits for it.
    pub fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.stop.send_replace(true);
        if let Some(runtime) = self.inner.runtime.lock().take() {
            runtime.shutdown_background();
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Tasks alive on the query threads: the queries' own and those their plans spawned.
    pub fn alive_tasks(&self) -> usize {
        self.inner.handle.metrics().num_alive_tasks()
    }
}

/// A task handle that aborts the task when dropped before the task ended.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        let abort: AbortHandle = self.0.abort_handle();
        abort.abort();
    }
}

/// The nice value of query threads: the calling thread's plus [`QUERY_THREAD_NICE`].
#[cfg(target_os = "linux")]
fn query_nice() -> Option<i32> {
    // On Linux PRIO_PROCESS with no pid is the calling thread alone.
    match rustix::process::getpriority_process(None) {
        Ok(nice) => Some((nice + QUERY_THREAD_NICE).min(19)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the scheduling priority");
            None
        }
    }
}

#[cfg(target_os = "linux")]
fn set_nice(nice: Option<i32>) {
    if let Some(nice) = nice
        && let Err(e) = rustix::process::setpriority_process(None, nice)
    {
        tracing::warn!(error = %e, "cannot lower the query threads' priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn query_nice() -> Option<i32> {
    None
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_: Option<i32>) {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A future that never yields once started: the shape of an operator stuck in one poll,
    /// bounded so the test ends.
    async fn busy_for(duration: Duration) -> Result<()> {
        let until = std::time::Instant::now() + duration;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn callers_runtime_stays_free_while_queries_spin() {
        let executor = QueryExecutor::new(2).unwrap();
        let spinners: Vec<_> = (0..4)
            .map(|_| tokio::spawn(executor.clone().run_owned(busy_for(Duration::from_secs(2)))))
            .collect();
        // The caller's one worker thread still answers at once.
        let started = std::time::Instant::now();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        for spinner in spinners {
            spinner.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn dropping_the_caller_aborts_the_task() {
        let executor = QueryExecutor::new(1).unwrap();
        let forever = async {
            loop {
                tokio::task::yield_now().await;
            }
            #[allow(unreachable_code)]
            Ok(())
        };
        let waited = tokio::time::timeout(
            Duration::from_millis(50),
            executor.run(Cancel::default(), forever),
        )
        .await;
        assert!(waited.is_err());
        for _ in 0..100 {
            if executor.alive_tasks() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the aborted task is still alive: {}",
            executor.alive_tasks()
        );
    }

    #[tokio::test]
    async fn shutdown_refuses_new_work_and_cancels_running_work() {
        let executor = QueryExecutor::new(1).unwrap();
        let pending = tokio::spawn({
            let executor = executor.clone();
            async move {
                // Stuck in one poll: the caller is answered all the same.
                executor
                    .run(Cancel::default(), busy_for(Duration::from_secs(3)))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        executor.shutdown();
        let cancelled = tokio::time::timeout(Duration::from_secs(1), pending)
            .await
            .expect("a cancelled query answers")
            .unwrap();
        assert!(
            matches!(cancelled, Err(Error::ShuttingDown)),
            "{cancelled:?}"
        );
        let refused = executor.run(Cancel::default(), async { Ok(()) }).await;
        assert!(matches!(refused, Err(Error::ShuttingDown)), "{refused:?}");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn query_threads_run_at_a_lower_priority() {
        let executor = QueryExecutor::new(1).unwrap();
        let nice = executor
            .run(Cancel::default(), async {
                // A blocking thread too, started by a query thread.
                let blocking = tokio::task::spawn_blocking(|| {
                    rustix::process::getpriority_process(None).unwrap()
                })
                .await
                .unwrap();
                Ok((
                    rustix::process::getpriority_process(None).unwrap(),
                    blocking,
                ))
            })
            .await
            .unwrap();
        let ours = rustix::process::getpriority_process(None).unwrap();
        let expected = (ours + QUERY_THREAD_NICE).min(19);
        assert_eq!(nice, (expected, expected));
    }

    impl QueryExecutor {
        async fn run_owned<T, F>(self, work: F) -> Result<T>
        where
            F: Future<Output = Result<T>> + Send + 'static,
            T: Send + 'static,
        {
            self.run(Cancel::default(), work).await
        }
    }
}
