//! The map gate: LMDB may only resize its memory map while no transaction of this process is
//! alive, so every transaction holds a [`Pass`] and a resize waits for all of them to end.
//!
//! `mdb_env_set_mapsize` unmaps and remaps the file: a read transaction alive in another thread
//! would then read freed memory. LMDB only refuses the call while a *write* transaction is open,
//! so the store counts its own transactions (read views included) here. A resize closes the gate
//! to new passes, waits for the count to reach zero and runs while holding the lock.
//!
//! A thread that keeps a read view open and then needs a resize (a write hits a full map) would
//! wait for itself: the wait is bounded, and the write then fails with
//! [`StoreError::MapGrowth`] naming the cause instead of hanging.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::StoreError;

/// How long a resize waits for this process's open transactions to end.
pub(crate) const RESIZE_WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    /// Passes alive.
    active: usize,
    /// A resize is waiting or running: no new passes until it is done.
    closed: bool,
}

/// Counts this process's live transactions; see the module docs.
#[derive(Default)]
pub(crate) struct Gate {
    state: Mutex<State>,
    changed: Condvar,
}

/// Held by every transaction of the store (read or write) for as long as it lives.
pub(crate) struct Pass(Arc<Gate>);

impl Gate {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two plain counters: a panic elsewhere cannot leave it half-updated.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// A pass for one transaction; waits while a resize is pending.
    pub(crate) fn enter(self: &Arc<Self>) -> Pass {
        let mut state = self.lock();
        while state.closed {
            state = self.wait(state);
        }
        state.active += 1;
        Pass(Arc::clone(self))
    }

    /// Runs `resize` once no pass is alive, keeping new ones out until it returns. Gives up
    /// after `timeout` if passes stay alive (e.g. a read view held by the calling thread).
    pub(crate) fn exclusive<R>(
        &self,
        timeout: Duration,
        resize: impl FnOnce() -> R,
    ) -> Result<R, StoreError> {
        let mut state = self.lock();
        while state.closed {
            state = self.wait(state);
        }
        state.closed = true;
        let deadline = Instant::now() + timeout;
        while state.active > 0 {
            let now = Instant::now();
            if now >= deadline {
                let active = state.active;
                state.closed = false;
                drop(state);
                self.changed.notify_all();
                return Err(StoreError::MapGrowth(format!(
                    "{active} read view(s) or transaction(s) of this process stayed open for \
                     {timeout:?}; drop read views before writing"
                )));
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let result = resize();
        state.closed = false;
        drop(state);
        self.changed.notify_all();
        Ok(result)
    }

    /// Passes alive now (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn active(&self) -> usize {
        self.lock().active
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.active -= 1;
        let last = state.active == 0;
        drop(state);
        if last {
            self.0.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_waits_for_passes_and_times_out_when_they_stay() {
        let gate = Arc::new(Gate::default());
        let pass = gate.enter();
        let err = gate
            .exclusive(Duration::from_millis(50), || ())
            .unwrap_err();
        assert!(matches!(err, StoreError::MapGrowth(_)), "{err}");
        // the gate reopened after the timeout
        let second = gate.enter();
        assert_eq!(gate.active(), 2);

        let g = Arc::clone(&gate);
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(pass);
            drop(second);
            g.active()
        });
        assert_eq!(gate.exclusive(Duration::from_secs(5), || 42).unwrap(), 42);
        releaser.join().unwrap();
        assert_eq!(gate.active(), 0);
        let _third = gate.enter();
        assert_eq!(gate.active(), 1);
    }
}
