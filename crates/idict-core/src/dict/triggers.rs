//! The run's side of triggers: adding, removing and listing them (the
//! program's `IDict::trigger`, a client's Trigger RPC), and acting on a
//! firing once the update that made it is published.

use super::{IDict, Inner};
use crate::model::{TriggerActions, TriggerInfo};
use crate::triggers::{Fired, TriggerError, firing_text};
use std::sync::atomic::Ordering;

impl Inner {
    /// Adds a trigger; returns what the run notes about it (a key it does
    /// not have yet, or one that is not a number).
    pub fn add_trigger(
        &self,
        name: &str,
        condition: &str,
        actions: TriggerActions,
        from_program: bool,
    ) -> Result<Vec<String>, TriggerError> {
        let condition = {
            let mut defs = self.triggers.lock();
            let c = defs.add(name, condition, actions, from_program)?;
            self.triggers_generation
                .store(defs.generation, Ordering::Release);
            c
        };
        let p = self.published.read();
        let notes = condition
            .keys
            .iter()
            .filter_map(|k| match p.entry(k) {
                None => Some(format!(
                    "the run has no key '{k}' yet: the trigger waits for it"
                )),
                Some(e) if e.value.as_scalar().is_none() => Some(format!(
                    "'{k}' holds {}, not a number: the trigger reads it only while it is one",
                    e.value.kind().name()
                )),
                Some(_) => None,
            })
            .collect();
        Ok(notes)
    }

    pub fn remove_trigger(&self, name: &str) -> Result<(), TriggerError> {
        let mut defs = self.triggers.lock();
        defs.remove(name)?;
        self.triggers_generation
            .store(defs.generation, Ordering::Release);
        Ok(())
    }

    /// The run's triggers, in the order they were added.
    pub fn trigger_list(&self) -> Vec<TriggerInfo> {
        self.triggers.lock().list.iter().map(|d| d.info()).collect()
    }
}

impl IDict {
    /// Adds a trigger: when `condition` (an expression over the run's
    /// scalar keys, see [`crate::triggers::expr`]) becomes true at an
    /// update, the run logs it and does `actions`; a pause holds the run at
    /// its next `wait()`, before another step. It fires once per crossing.
    /// Returns notes on it (e.g. a key the run does not have yet).
    ///
    /// ```
    /// use idict_core::{IDict, TriggerActions};
    /// let d = IDict::new("heat");
    /// d.trigger("blew up", "isnan(residual)", TriggerActions::pause()).unwrap();
    /// ```
    pub fn trigger(
        &self,
        name: &str,
        condition: &str,
        actions: TriggerActions,
    ) -> Result<Vec<String>, TriggerError> {
        self.inner.add_trigger(name, condition, actions, true)
    }

    /// Removes the trigger called `name`.
    pub fn remove_trigger(&self, name: &str) -> Result<(), TriggerError> {
        self.inner.remove_trigger(name)
    }

    /// The run's triggers and what each has done.
    pub fn triggers(&self) -> Vec<TriggerInfo> {
        self.inner.trigger_list()
    }

    /// Acts on a firing, after its update was published: counts it, logs
    /// it (every client and the recording see it), then checkpoints,
    /// pauses or terminates as asked.
    pub(crate) fn act_on(&self, f: Fired) {
        let version = f.firing.version;
        self.inner.triggers.lock().fired(&f.firing.name, version);
        let mut text = firing_text(&f.firing, &f.actions);
        if f.actions.checkpoint {
            let name = checkpoint_file(self.name(), &f.firing.name, version);
            let file = match &self.inner.options.checkpoint_dir {
                Some(dir) => dir.join(name),
                None => name,
            };
            match self.checkpoint(&file) {
                Ok(_) => text.push_str(&format!(" (checkpoint {})", file.display())),
                Err(e) => text.push_str(&format!(" (checkpoint failed: {e})")),
            }
        }
        match f.actions.level {
            crate::model::Level::Debug => tracing::debug!(run = %self.name(), "{text}"),
            crate::model::Level::Info => tracing::info!(run = %self.name(), "{text}"),
            crate::model::Level::Warn => tracing::warn!(run = %self.name(), "{text}"),
            crate::model::Level::Error => tracing::error!(run = %self.name(), "{text}"),
        }
        self.inner.log_message(
            f.actions.level,
            text,
            self.inner.elapsed(),
            Some(version),
            Some(f.firing),
        );
        if f.actions.terminate {
            self.terminate();
        } else if f.actions.pause {
            self.pause();
        }
    }
}

/// Where a trigger's checkpoint goes: the run's directory, named by run,
/// trigger and version (what a name holds that a file name cannot, `_`).
fn checkpoint_file(run: &str, trigger: &str, version: u64) -> std::path::PathBuf {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    std::path::PathBuf::from(format!(
        "{}.{}.v{version}.idict-checkpoint",
        clean(run),
        clean(trigger)
    ))
}

#[cfg(test)]
mod tests {
    use crate::model::{Level, RunState, TriggerActions};
    use crate::{IDict, WaitOutcome};
    use std::time::Duration;

    fn messages(d: &IDict) -> Vec<crate::model::LogMessage> {
        d.inner.published.read().messages_after(0)
    }

    #[test]
    fn a_nan_trigger_holds_the_run_at_the_step_that_made_it() {
        let d = IDict::new("blowup");
        let notes = d
            .trigger("nan", "isnan(residual)", TriggerActions::pause())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            notes,
            ["the run has no key 'residual' yet: the trigger waits for it"]
        );
        let mut steps_after = 0;
        let mut fired_at = None;
        for step in 0..100u32 {
            if !matches!(d.wait_timeout(Duration::from_millis(50)), WaitOutcome::Go) {
                break;
            }
            if fired_at.is_some() {
                steps_after += 1;
            }
            let residual = if step >= 40 {
                f64::NAN
            } else {
                1.0 / f64::from(step + 1)
            };
            d.lock().insert("residual", residual);
            let v = d.notify_update().unwrap_or_else(|e| panic!("{e}"));
            if residual.is_nan() && fired_at.is_none() {
                fired_at = Some(v);
            }
        }
        assert_eq!(steps_after, 0, "no step computed after the NaN");
        assert_eq!(d.status().state, RunState::Paused);
        let m = messages(&d);
        let firing = m
            .iter()
            .find_map(|m| m.trigger.clone())
            .expect("a firing is logged");
        assert_eq!(Some(firing.version), fired_at);
        assert_eq!(firing.name, "nan");
        assert!(firing.values[0].1.is_nan());
        let text = &m
            .iter()
            .find(|m| m.trigger.is_some())
            .map(|m| m.text.clone());
        assert!(
            text.as_deref()
                .is_some_and(|t| t.contains("trigger 'nan' fired at v41") && t.contains("pausing")),
            "{text:?}"
        );
        let listed = d.triggers();
        assert_eq!((listed[0].fired, listed[0].last_fired_version), (1, 41));
    }

    #[test]
    fn a_trigger_fires_once_per_crossing() {
        let d = IDict::new("energy");
        d.trigger(
            "doubled",
            "energy > 2 * start(energy)",
            TriggerActions::message(Level::Info, "energy doubled"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for e in [1.0, 3.0, 3.5, 1.0, 2.5, 0.5, 4.0] {
            d.lock().insert("energy", e);
            d.notify_update().unwrap_or_else(|e| panic!("{e}"));
        }
        let fired: Vec<u64> = messages(&d)
            .iter()
            .filter_map(|m| m.trigger.as_ref().map(|t| t.version))
            .collect();
        assert_eq!(fired, [2, 5, 7]);
        assert_eq!(d.status().state, RunState::Running, "a message only");
    }

    #[test]
    fn rising_ten_updates_running() {
        let d = IDict::new("rising");
        d.trigger(
            "diverging",
            "rises(residual) >= 10",
            TriggerActions::terminate(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..30 {
            // Falls for 10, then rises.
            let r = if i < 10 {
                10.0 - f64::from(i)
            } else {
                f64::from(i)
            };
            d.lock().insert("residual", r);
            d.notify_update().unwrap_or_else(|e| panic!("{e}"));
        }
        let fired: Vec<u64> = messages(&d)
            .iter()
            .filter_map(|m| m.trigger.as_ref().map(|t| t.version))
            .collect();
        assert_eq!(fired, [20], "the 10th rise in a row");
        assert!(d.terminated());
    }

    #[test]
    fn a_trigger_checkpoints_the_run_at_the_version_that_fired() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = IDict::builder("ckpt").checkpoint_dir(dir.path()).build();
        d.trigger(
            "big",
            "x > 10",
            TriggerActions::message(Level::Info, "saved").with_checkpoint(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for x in [1.0, 20.0] {
            d.lock().insert("x", x);
            d.notify_update().unwrap_or_else(|e| panic!("{e}"));
        }
        let file = dir.path().join("ckpt.big.v2.idict-checkpoint");
        let restored = IDict::restore(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            restored.lock().get("x"),
            Some(&crate::value::Value::Float(20.0))
        );
        let text = messages(&d)
            .iter()
            .find(|m| m.trigger.is_some())
            .map(|m| m.text.clone());
        assert!(text.is_some_and(|t| t.contains("checkpoint") && t.contains("ckpt.big.v2")));
    }

    #[test]
    fn triggers_are_added_listed_and_removed() {
        let d = IDict::new("list");
        d.lock()
            .insert("field", crate::value::Value::Str("x".into()));
        d.notify_update().unwrap_or_else(|e| panic!("{e}"));
        let notes = d
            .trigger("odd", "field > 0", TriggerActions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(notes[0].contains("not a number"), "{notes:?}");
        assert!(matches!(
            d.trigger("odd", "x > 0", TriggerActions::default()),
            Err(crate::triggers::TriggerError::Exists(_))
        ));
        let e = d
            .trigger("bad", "x >", TriggerActions::default())
            .unwrap_err();
        assert!(e.to_string().starts_with("condition at column"), "{e}");
        assert_eq!(d.triggers().len(), 1);
        d.remove_trigger("odd").unwrap_or_else(|e| panic!("{e}"));
        assert!(d.triggers().is_empty());
        assert!(d.remove_trigger("odd").is_err());
    }
}
