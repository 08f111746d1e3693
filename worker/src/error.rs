//! The worker's errors: why it cannot start or go on ([`WorkerError`]), and the failures of
//! the I/O below a call (Docker, a container's pipes, artifact downloads) that the modules
//! above turn into a reply. Failures of single invocations are not errors here: they become
//! replies with a status (see `executor`).

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

/// What went wrong talking to a container, short of the handler's own errors.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("Docker refused: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("writing to the container failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a dependency artifact or deployment package could not be had on this host.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    #[error("this worker has no WORKER_TOKEN, so it cannot fetch dependency artifacts")]
    NoToken,
    #[error("the api answered {status} to {what}: {body}")]
    Api {
        what: String,
        status: u16,
        body: String,
    },
    #[error("cannot reach the api for {what}: {source}")]
    Unreachable {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the artifact is not valid: {0}")]
    Invalid(String),
    #[error("artifact file system error: {0}")]
    Io(#[from] std::io::Error),
}
