//! Schedules: every api replica looks once a second for the cron ticks that passed since it
//! last looked and accepts one invocation per tick. The tick's idempotency key (function and
//! tick time) makes it one invocation however many replicas see the tick. Function schedules
//! are read again every few seconds, so a change applies without a restart; ticks that passed
//! while no api ran are not fired afterwards (a replica starts looking from its start).

use super::{AcceptError, Dispatch, accept};
use crate::domain::async_status::Mode;
use crate::domain::schedule::Schedule;
use crate::store::{self, NewAsync, ScheduledFunction};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const LOOK_EVERY: Duration = Duration::from_secs(1);
const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// Ticks of one function fired at most per look (an every-minute schedule needs one).
const MAX_TICKS_PER_LOOK: usize = 10;
/// The furthest back a look reaches after it could not fire (Postgres or the broker away).
const MAX_CATCH_UP: chrono::Duration = chrono::Duration::minutes(10);

/// Starts the scheduler; it ends when `stop` is cancelled.
pub fn spawn_scheduler(state: Dispatch, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut schedules: HashMap<i64, (ScheduledFunction, Schedule)> = HashMap::new();
        let mut loaded_at: Option<Instant> = None;
        let mut last_look = Utc::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(LOOK_EVERY) => {}
            }
            if loaded_at.is_none_or(|at| at.elapsed() >= RELOAD_EVERY) {
                match store::list_schedules(&state.db).await {
                    Ok(list) => {
                        schedules = parse_all(list, schedules);
                        loaded_at = Some(Instant::now());
                    }
                    Err(error) => {
                        tracing::debug!(%error, "cannot read the schedules");
                        continue;
                    }
                }
            }
            let now = Utc::now();
            let since = last_look.max(now - MAX_CATCH_UP);
            let mut all_fired = true;
            for (function, schedule) in schedules.values() {
                for tick in schedule.ticks_between(since, now, MAX_TICKS_PER_LOOK) {
                    if let Err(error) = fire(&state, function, tick).await {
                        tracing::warn!(%error, function = %function.name, %tick, "schedule tick not fired; trying again");
                        all_fired = false;
                    }
                }
            }
            // A tick that could not fire is tried again at the next look (its key keeps it one).
            if all_fired {
                last_look = now;
            }
        }
    })
}

/// The schedules that parse (the api checked them when they were saved). One unchanged since
/// the last load is taken from `before` rather than parsed again: a parse searches up to 400
/// years for a first tick, milliseconds each, every few seconds for every scheduled function.
fn parse_all(
    list: Vec<ScheduledFunction>,
    mut before: HashMap<i64, (ScheduledFunction, Schedule)>,
) -> HashMap<i64, (ScheduledFunction, Schedule)> {
    list.into_iter()
        .filter_map(|function| {
            if let Some((known, schedule)) = before.remove(&function.id)
                && known == function
            {
                return Some((function.id, (function, schedule)));
            }
            match Schedule::parse(&function.schedule, Some(&function.timezone)) {
                Ok(schedule) => Some((function.id, (function, schedule))),
                Err(error) => {
                    tracing::warn!(%error, function = %function.name, "schedule ignored");
                    None
                }
            }
        })
        .collect()
}

/// Accepts the invocation of `function`'s `tick`, unless a replica did.
async fn fire(
    state: &Dispatch,
    function: &ScheduledFunction,
    tick: DateTime<Utc>,
) -> Result<(), AcceptError> {
    let scheduled_time = tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let accepted = match accept(
        state,
        NewAsync {
            id: Uuid::now_v7(),
            namespace: function.namespace.clone(),
            namespace_uid: function.namespace_uid,
            function_id: function.id,
            function_name: function.name.clone(),
            mode: Mode::Schedule,
            event: json!({"source": "schedule", "scheduled_time": scheduled_time}).to_string(),
            // No header value holds a newline: no caller's key can take a tick's.
            idempotency_key: Some(format!("\nschedule:{}:{scheduled_time}", function.id)),
            chain_depth: 0,
        },
        // A tick is one invocation however full the namespace is: its time will not come back.
        false,
    )
    .await
    {
        Ok(accepted) => accepted,
        // A replica of another version made the tick's invocation with an event written
        // otherwise: the tick is made all the same.
        Err(AcceptError::KeyReused(_)) => return Ok(()),
        Err(error) => return Err(error),
    };
    if !accepted.existing {
        tracing::info!(function = %function.name, %scheduled_time, invocation_id = %accepted.invocation_id, "schedule fired");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduled(id: i64, schedule: &str) -> ScheduledFunction {
        ScheduledFunction {
            id,
            namespace: "default".into(),
            namespace_uid: Uuid::nil(),
            name: format!("f{id}"),
            schedule: schedule.into(),
            timezone: "UTC".into(),
        }
    }

    fn next_minute(map: &HashMap<i64, (ScheduledFunction, Schedule)>, id: i64) -> u32 {
        use chrono::Timelike;
        let from = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        map[&id].1.next_after(from).unwrap().minute()
    }

    #[test]
    fn a_reload_keeps_unchanged_schedules_takes_changed_ones_and_drops_the_rest() {
        let first = parse_all(
            vec![
                scheduled(1, "5 * * * *"),
                scheduled(2, "10 * * * *"),
                scheduled(3, "0 0 * * *"),
            ],
            HashMap::new(),
        );
        assert_eq!(first.len(), 3);
        let second = parse_all(
            vec![
                scheduled(1, "5 * * * *"),
                scheduled(2, "20 * * * *"),
                scheduled(4, "bad"),
            ],
            first,
        );
        let mut ids: Vec<i64> = second.keys().copied().collect();
        ids.sort();
        assert_eq!(
            ids,
            [1, 2],
            "the deleted one and the one that does not parse are gone"
        );
        assert_eq!(next_minute(&second, 1), 5);
        assert_eq!(
            next_minute(&second, 2),
            20,
            "a changed expression is parsed again"
        );
    }
}
