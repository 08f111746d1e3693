//! `faas dev [DIR]`: deploys the folder, then watches it and deploys again after each change
//! (once the changes settle), while following the function's logs; until interrupted.

use super::deploy::{self, check_build, report};
use super::logs::{StreamFilter, follow};
use crate::Context;
use crate::error::{CliError, CliResult};
use crate::folder::Folder;
use crate::folder::package::NEVER_PACKAGED;
use notify::{EventKind, RecursiveMode, Watcher as _};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// How long the folder must be quiet after a change before it is deployed.
const SETTLE: Duration = Duration::from_millis(300);

/// `faas dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// The function's folder [default: the current directory].
    pub dir: Option<PathBuf>,
    /// A `KEY=value` file whose variables join `env`.
    #[arg(long)]
    pub env_file: Option<PathBuf>,
}

/// Whether a change to `path` (under `dir`) is one to deploy: not in what is never packaged.
pub fn is_relevant(dir: &Path, path: &Path) -> bool {
    let relative = path.strip_prefix(dir).unwrap_or(path);
    !relative
        .components()
        .any(|part| NEVER_PACKAGED.contains(&part.as_os_str().to_string_lossy().as_ref()))
}

/// Deploys, watches and redeploys until interrupted.
pub fn dev(context: &Context, args: DevArgs) -> CliResult {
    let dir = crate::folder_or_here(args.dir);
    let dir = dir.canonicalize().map_err(|e| CliError::io(&dir, e))?;
    let client = context.client()?;
    let load = || Folder::load(&dir, args.env_file.as_deref());
    let folder = load()?;
    let name = folder.manifest.name.clone();
    let deployed = deploy::save(&client, &folder, context.format)?;
    report(context.format, &client, &deployed);
    if let Err(error) = check_build(&deployed.function) {
        eprintln!("{}", error.one_line());
    }

    let (sender, changes) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let _ = sender.send(event);
    })
    .map_err(|error| CliError::Usage(format!("cannot watch {}: {error}", dir.display())))?;
    watcher
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(|error| CliError::Usage(format!("cannot watch {}: {error}", dir.display())))?;
    eprintln!(
        "[faas] watching {} for changes; Ctrl-C stops",
        dir.display()
    );

    {
        let client = client.clone();
        let format = context.format;
        let filter = StreamFilter {
            function: Some(name.clone()),
            status: None,
        };
        // Retries by itself; ends only on an error it cannot retry (a revoked key).
        std::thread::spawn(move || {
            if let Err(error) = follow(&client, &filter, format, HashSet::new()) {
                eprintln!("[faas] logs stopped: {}", error.one_line());
            }
        });
    }
    // Ends with the process (Ctrl-C) or when the watcher goes away.
    while let Ok(change) = changes.recv() {
        if !wants_deploy(&dir, change) {
            continue;
        }
        // Let a burst of writes (an editor's save, a checkout) end first.
        while changes.recv_timeout(SETTLE).is_ok() {}
        eprintln!("[faas] change in {}; deploying {name}", dir.display());
        let deployed = load().and_then(|folder| deploy::save(&client, &folder, context.format));
        match deployed {
            Ok(deployed) => {
                report(context.format, &client, &deployed);
                if let Err(error) = check_build(&deployed.function) {
                    eprintln!("{}", error.one_line());
                }
            }
            Err(error @ CliError::Unauthorized { .. }) => return Err(error),
            Err(error) => eprintln!("{}", error.one_line()),
        }
    }
    drop(watcher);
    Ok(())
}

/// Whether a watcher's event is a change to deploy.
fn wants_deploy(dir: &Path, change: notify::Result<notify::Event>) -> bool {
    let Ok(event) = change else { return false };
    matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
    ) && event.paths.iter().any(|path| is_relevant(dir, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_in_what_is_never_packaged_are_not_deployed() {
        let dir = Path::new("/work/hello");
        assert!(is_relevant(dir, Path::new("/work/hello/main.py")));
        assert!(is_relevant(dir, Path::new("/work/hello/lib/util.py")));
        assert!(!is_relevant(dir, Path::new("/work/hello/.git/index")));
        assert!(!is_relevant(
            dir,
            Path::new("/work/hello/node_modules/x/y.js")
        ));
        assert!(!is_relevant(dir, Path::new("/work/hello/.env")));
        let access = notify::Event::new(EventKind::Access(notify::event::AccessKind::Any))
            .add_path(dir.join("main.py"));
        assert!(!wants_deploy(dir, Ok(access)));
        let write = notify::Event::new(EventKind::Modify(notify::event::ModifyKind::Any))
            .add_path(dir.join("main.py"));
        assert!(wants_deploy(dir, Ok(write)));
    }
}
