//! Helpers shared by slipstream's integration tests.
