//! Why a worker cannot start or go on. Failures of single invocations are not errors here: they
//! become replies with a status (see `executor`).

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(
        "cannot reach the Docker daemon at {host}: {source}; is dockerd running? (scripts/setup.sh starts one)"
    )]
    DockerUnreachable {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "runtime image {image:?} is missing; build it with `{build_command}` (or run scripts/setup.sh)"
    )]
    ImageMissing {
        image: String,
        build_command: String,
    },
    #[error(
        "the Docker daemon has no {runtime:?} runtime (it has: {available}); install gVisor's runsc and register it in /etc/docker/daemon.json (scripts/setup.sh does both)"
    )]
    RuntimeMissing { runtime: String, available: String },
    #[error("cannot reach the message broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("Docker request failed: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("cannot serve metrics: {0}")]
    Io(#[from] std::io::Error),
}
