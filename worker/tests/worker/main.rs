//! The worker's integration tests, one binary: the real Docker daemon (runc and runsc) and the
//! real runtime images, without a broker.

mod builds;
mod hostile;
mod sandbox;
mod support;
