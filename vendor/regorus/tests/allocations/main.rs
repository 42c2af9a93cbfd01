// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

//! Allocations on hot paths, counted by this test binary's global
//! allocator: work that builds values nobody uses (errors made and dropped
//! on the normal path, copies of shared data) shows up as allocations per
//! step.

mod counting;
mod hoister;
mod parser;
#[cfg(feature = "rvm")]
mod rvm;
mod scheduler;
