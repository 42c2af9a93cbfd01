// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

//! A global allocator that counts the allocations (and the bytes they ask
//! for) of the thread running `counted` (tests run on several threads at
//! once).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // `const`-initialised cells without destructors: using them never
    // allocates, so the allocator may.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
            BYTES.with(|n| n.set(n.get() + layout.size()));
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, counting the allocations this thread makes meanwhile.
pub fn counted<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let (value, allocations, _) = counted_bytes(f);
    (value, allocations)
}

/// Runs `f`, counting the allocations this thread makes meanwhile and the
/// bytes they ask for (a reallocation counts as a new allocation of its
/// new size, as `GlobalAlloc::realloc` does it).
pub fn counted_bytes<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    ALLOCATIONS.with(|n| n.set(0));
    BYTES.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let value = f();
    COUNTING.with(|c| c.set(false));
    (value, ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get))
}
