// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.
mod compiler;
mod extensions;
mod prints;
mod rego;
