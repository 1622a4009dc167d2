//! Threads for FUSE requests that may block inside the simulated machine (a read
//! of `events` waits for an event; a poll watcher waits for readiness), so one
//! blocked client never stalls the FUSE session threads that serve the others.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Most worker threads: each blocked request holds one, so this bounds how many
/// requests may be blocked at once. Past it, jobs queue until a worker frees.
pub const MAX_WORKERS: usize = 256;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    idle: usize,
    workers: usize,
    closed: bool,
}

/// A pool that grows on demand (up to [`MAX_WORKERS`]) and reuses idle threads.
#[derive(Default)]
pub struct Workers {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Workers {
    /// An empty pool; threads start as jobs arrive.
    pub fn new() -> Arc<Workers> {
        Arc::new(Workers::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job` on a worker thread.
    pub fn run(self: &Arc<Self>, job: impl FnOnce() + Send + 'static) {
        let spawn = {
            let mut q = self.lock();
            q.jobs.push_back(Box::new(job));
            let spawn = q.idle == 0 && q.workers < MAX_WORKERS;
            if spawn {
                q.workers += 1;
            }
            spawn
        };
        if spawn {
            let pool = self.clone();
            let started = std::thread::Builder::new()
                .name("fuse-worker".into())
                .spawn(move || pool.work());
            if started.is_err() {
                // No thread: the job stays queued for an existing worker.
                self.lock().workers -= 1;
            }
        }
        self.ready.notify_one();
    }

    fn work(&self) {
        let mut q = self.lock();
        loop {
            if let Some(job) = q.jobs.pop_front() {
                drop(q);
                job();
                q = self.lock();
                continue;
            }
            if q.closed {
                q.workers -= 1;
                return;
            }
            q.idle += 1;
            q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            q.idle -= 1;
        }
    }

    /// Lets idle workers exit (blocked ones exit when their job returns).
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::mpsc;

    #[test]
    fn blocked_jobs_do_not_stall_later_ones() {
        // Eight jobs block together on a barrier the test also waits on: it only
        // opens if the pool grew to eight threads at once.
        let pool = Workers::new();
        let barrier = Arc::new(Barrier::new(9));
        let (tx, rx) = mpsc::channel();
        for i in 0..8 {
            let (b, tx) = (barrier.clone(), tx.clone());
            pool.run(move || {
                b.wait();
                let _ = tx.send(i);
            });
        }
        barrier.wait();
        let mut done: Vec<i32> = rx.iter().take(8).collect();
        done.sort();
        assert_eq!(done, (0..8).collect::<Vec<_>>());
        // Later jobs still run (on the now idle workers).
        let (tx2, rx2) = mpsc::channel();
        for i in 0..100 {
            let tx2 = tx2.clone();
            pool.run(move || {
                let _ = tx2.send(i);
            });
        }
        assert_eq!(rx2.iter().take(100).count(), 100);
        pool.close();
    }
}
