//! Which VM a call runs on: each worker thread has a current VM and, after a script ran out
//! of memory, the retired ones still finishing their requests.
//!
//! A VM that hit its memory limit may be left half-way through anything by the failing
//! script, so no new request starts on it: the next one starts a fresh VM. But requests
//! already under way there (waiting on `tidegate.http.request`, or between phases with a
//! `ctx` table) belong to it: their coroutines and `ctx` live in it. They finish there, and
//! the retired VM is dropped when its last request ends. So a memory bomb fails only its own
//! request. At most [`MAX_RETIRED`] VMs are kept retired per worker; past that the oldest
//! goes, and its requests fail with "the Lua VM was restarted".

use super::vm::{HookError, Outcome, Vm};
use std::cell::RefCell;

/// Retired VMs kept per worker thread at most.
pub const MAX_RETIRED: usize = 4;

#[derive(Default)]
struct Slots {
    current: Option<Vm>,
    retired: Vec<Vm>,
}

thread_local! {
    static SLOTS: RefCell<Slots> = RefCell::new(Slots::default());
}

/// Run `f` on the VM request `rid` belongs to (a retired one if it started there), or on
/// this thread's current VM, started if needed with `memory_limit`.
pub fn with_vm(
    memory_limit: usize,
    rid: Option<u64>,
    f: impl FnOnce(&mut Vm) -> mlua::Result<Outcome>,
) -> Result<Outcome, HookError> {
    SLOTS.with(|cell| {
        let Ok(mut slots) = cell.try_borrow_mut() else {
            return Err(HookError("the Lua VM is busy (re-entered)".into()));
        };
        let slots = &mut *slots;
        if let Some(i) = rid.and_then(|r| slots.retired.iter().position(|vm| vm.holds(r))) {
            let vm = &mut slots.retired[i];
            let result = f(vm);
            if vm.is_idle() {
                slots.retired.remove(i);
            }
            return result.map_err(|e| HookError(super::vm::describe(&e)));
        }
        if slots
            .current
            .as_ref()
            .is_some_and(|vm| vm.memory_limit() != memory_limit)
        {
            retire(slots);
        }
        if slots.current.is_none() {
            slots.current = Some(
                Vm::new(memory_limit)
                    .map_err(|e| HookError(format!("cannot start a Lua VM: {e}")))?,
            );
        }
        let Some(vm) = slots.current.as_mut() else {
            return Err(HookError("no Lua VM".into()));
        };
        let result = f(vm);
        if let Err(mlua::Error::MemoryError(_)) = &result {
            if let Some(r) = rid {
                vm.forget(r);
            }
            retire(slots);
        }
        result.map_err(|e| HookError(super::vm::describe(&e)))
    })
}

/// Take the current VM out of service: kept while requests are under way on it.
fn retire(slots: &mut Slots) {
    let Some(vm) = slots.current.take() else {
        return;
    };
    if vm.is_idle() {
        return;
    }
    tracing::warn!(
        target: "lua",
        requests = vm.requests(),
        "a Lua VM is retired; the requests under way on it finish there"
    );
    if slots.retired.len() >= MAX_RETIRED {
        slots.retired.remove(0);
    }
    slots.retired.push(vm);
}

/// Forget request `rid` wherever it lives (at the end of the request). Safe at any time,
/// also while the thread's locals are torn down.
pub fn end_request(rid: u64) {
    let _ = SLOTS.try_with(|cell| {
        if let Ok(mut slots) = cell.try_borrow_mut() {
            if let Some(vm) = slots.current.as_mut() {
                vm.forget(rid);
            }
            for vm in slots.retired.iter_mut() {
                vm.forget(rid);
            }
            slots.retired.retain(|vm| !vm.is_idle());
        }
    });
}

/// This worker's retired VMs (for tests and metrics).
pub fn retired() -> usize {
    SLOTS.with(|c| c.try_borrow().map(|s| s.retired.len()).unwrap_or(0))
}
