//! Triggers: rules a run checks at each update, on its own thread, so that
//! a pause they ask for holds the run at its next `wait()`, before another
//! step is computed. A trigger is a name, a condition over the run's
//! scalar keys ([`expr`]) and actions; it fires once per crossing (when its
//! condition becomes true), not at every update while it stays true.
//!
//! The definitions (`Defs`) are shared: the program and clients add and
//! remove them, and listing reads them. The run's thread keeps its own
//! compiled copy (`Engine`, in the working map) and takes the definitions
//! again only when their generation moves; between, an update with no
//! trigger costs one atomic load.

pub mod expr;

use crate::model::{Level, TriggerActions, TriggerFiring, TriggerInfo};
use expr::{Condition, ConditionError, KeyValues, Program};
use std::sync::Arc;
use thiserror::Error;

/// The most triggers a run holds.
pub const MAX_TRIGGERS: usize = 64;
/// The longest name and message of a trigger, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Why a trigger was not added or removed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TriggerError {
    #[error("condition {0}")]
    Condition(#[from] ConditionError),
    #[error("a trigger named '{0}' exists: remove it first")]
    Exists(String),
    #[error("no trigger named '{0}'")]
    NotFound(String),
    #[error("a trigger's name is 1 to {MAX_NAME_BYTES} bytes of printable text")]
    BadName,
    #[error("a trigger's message is at most {MAX_MESSAGE_BYTES} bytes")]
    MessageTooLong,
    #[error("a run holds at most {MAX_TRIGGERS} triggers")]
    TooMany,
}

/// One trigger as defined, with what it has done.
#[derive(Debug, Clone)]
pub(crate) struct Def {
    pub name: Arc<str>,
    pub condition: Arc<Condition>,
    pub actions: TriggerActions,
    pub from_program: bool,
    pub fired: u64,
    pub last_fired_version: u64,
}

impl Def {
    pub fn info(&self) -> TriggerInfo {
        TriggerInfo {
            name: self.name.to_string(),
            condition: self.condition.source.clone(),
            actions: self.actions.clone(),
            from_program: self.from_program,
            fired: self.fired,
            last_fired_version: self.last_fired_version,
        }
    }
}

/// The run's triggers as defined. `generation` moves on each change.
#[derive(Debug, Default)]
pub(crate) struct Defs {
    pub generation: u64,
    pub list: Vec<Def>,
}

impl Defs {
    /// Checks and adds a trigger.
    pub fn add(
        &mut self,
        name: &str,
        condition: &str,
        actions: TriggerActions,
        from_program: bool,
    ) -> Result<Arc<Condition>, TriggerError> {
        if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
            return Err(TriggerError::BadName);
        }
        if actions.message.len() > MAX_MESSAGE_BYTES {
            return Err(TriggerError::MessageTooLong);
        }
        if self.list.iter().any(|d| &*d.name == name) {
            return Err(TriggerError::Exists(name.to_string()));
        }
        if self.list.len() >= MAX_TRIGGERS {
            return Err(TriggerError::TooMany);
        }
        let condition = Arc::new(Condition::parse(condition)?);
        self.list.push(Def {
            name: name.into(),
            condition: condition.clone(),
            actions,
            from_program,
            fired: 0,
            last_fired_version: 0,
        });
        self.generation += 1;
        Ok(condition)
    }

    pub fn remove(&mut self, name: &str) -> Result<(), TriggerError> {
        let before = self.list.len();
        self.list.retain(|d| &*d.name != name);
        if self.list.len() == before {
            return Err(TriggerError::NotFound(name.to_string()));
        }
        self.generation += 1;
        Ok(())
    }

    /// Counts a firing (the engine tells after the update is published).
    pub fn fired(&mut self, name: &str, version: u64) {
        if let Some(d) = self.list.iter_mut().find(|d| &*d.name == name) {
            d.fired += 1;
            d.last_fired_version = version;
        }
    }
}

/// A key the triggers read, as the run's thread tracks it.
#[derive(Debug)]
struct Tracked {
    name: Arc<str>,
    /// Its slot in the working map, looked up again when keys come or go.
    slot: Option<u32>,
    seen: bool,
    changed: bool,
    /// Some condition reads its previous, first or running values: they
    /// are kept (else only its latest).
    history: bool,
}

/// One compiled trigger: its condition over the engine's keys.
#[derive(Debug)]
struct Rule {
    name: Arc<str>,
    condition: Arc<Condition>,
    /// The condition with its keys numbered as the engine's.
    program: Program,
    keys: Vec<usize>,
    actions: TriggerActions,
    /// True at the last evaluation: it fires only on a crossing.
    was: bool,
    /// Each of its keys has had a value.
    ready: bool,
}

/// A firing the run acts on once the update is published.
#[derive(Debug, Clone)]
pub(crate) struct Fired {
    pub firing: TriggerFiring,
    pub actions: TriggerActions,
}

/// The run's thread's compiled triggers (kept in the working map).
#[derive(Debug, Default)]
pub(crate) struct Engine {
    pub generation: u64,
    rules: Vec<Rule>,
    keys: Vec<Tracked>,
    /// `values[i]`: what the conditions read of `keys[i]`.
    values: Vec<KeyValues>,
    /// The programs' stack, as deep as the deepest needs.
    stack: Vec<f64>,
    slots_at: u64,
}

impl Engine {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Takes the definitions anew, keeping what each key and each rule
    /// that stays knew (a rule true before does not fire again).
    pub fn sync(&mut self, defs: &Defs) {
        let mut old_keys: Vec<(Tracked, KeyValues)> = std::mem::take(&mut self.keys)
            .into_iter()
            .zip(std::mem::take(&mut self.values))
            .collect();
        let old_rules = std::mem::take(&mut self.rules);
        for def in &defs.list {
            let mut keys = Vec::with_capacity(def.condition.keys.len());
            for (name, &history) in def.condition.keys.iter().zip(&def.condition.history) {
                let i = match self.keys.iter().position(|k| &*k.name == name) {
                    Some(i) => i,
                    None => {
                        let kept = old_keys
                            .iter()
                            .position(|(k, _)| &*k.name == name)
                            .map(|i| old_keys.swap_remove(i));
                        let (mut key, values) = kept.unwrap_or_else(|| {
                            let key = Tracked {
                                name: name.as_str().into(),
                                slot: None,
                                seen: false,
                                changed: false,
                                history: false,
                            };
                            (key, KeyValues::default())
                        });
                        // As the conditions now need (set below).
                        key.history = false;
                        self.keys.push(key);
                        self.values.push(values);
                        self.keys.len() - 1
                    }
                };
                self.keys[i].history |= history;
                keys.push(i);
            }
            let was = old_rules
                .iter()
                .find(|r| r.name == def.name && Arc::ptr_eq(&r.condition, &def.condition))
                .is_some_and(|r| r.was);
            self.rules.push(Rule {
                name: def.name.clone(),
                condition: def.condition.clone(),
                program: Program::new(&def.condition.expr, &keys),
                keys,
                actions: def.actions.clone(),
                was,
                ready: false,
            });
        }
        let depth = self.rules.iter().map(|r| r.program.depth()).max();
        self.stack = vec![0.0; depth.unwrap_or(0)];
        // Slots are looked up again at the next update.
        self.slots_at = u64::MAX;
        self.generation = defs.generation;
    }

    /// At an update, before the working map's changes are published: the
    /// changed keys' new values, then each rule one of whose keys changed.
    /// `slot(id)` is a working-map slot's value if it changed this update.
    pub fn evaluate(
        &mut self,
        key_generation: u64,
        lookup: impl Fn(&str) -> Option<u32>,
        changed: impl Fn(u32) -> Option<f64>,
        version: u64,
    ) -> Vec<Fired> {
        if self.slots_at != key_generation {
            for k in &mut self.keys {
                k.slot = lookup(&k.name);
            }
            self.slots_at = key_generation;
        }
        let mut any = false;
        for (k, v) in self.keys.iter_mut().zip(&mut self.values) {
            // Set for this update only: the flag of the last is cleared here.
            k.changed = false;
            let Some(x) = k.slot.and_then(&changed) else {
                continue;
            };
            // Its first value always (`start`), the rest only if read.
            if k.history || !k.seen {
                v.observe(x, !k.seen);
            } else {
                v.now = x;
            }
            k.seen = true;
            k.changed = true;
            any = true;
        }
        let mut fired = Vec::new();
        if !any {
            return fired;
        }
        let (keys, values) = (&self.keys, &self.values[..]);
        for rule in &mut self.rules {
            let changed = match rule.keys.as_slice() {
                [one] => keys[*one].changed,
                many => many.iter().any(|&i| keys[i].changed),
            };
            if !changed {
                continue;
            }
            // Ready once each key has had a value (and so for good).
            if !rule.ready {
                rule.ready = rule.keys.iter().all(|&i| keys[i].seen);
                if !rule.ready {
                    continue;
                }
            }
            let now = rule.program.run_with(values, &mut self.stack);
            if now && !rule.was {
                fired.push(Fired {
                    firing: TriggerFiring {
                        name: rule.name.to_string(),
                        condition: rule.condition.source.clone(),
                        values: rule
                            .keys
                            .iter()
                            .map(|&i| (keys[i].name.to_string(), values[i].now))
                            .collect(),
                        version,
                    },
                    actions: rule.actions.clone(),
                });
            }
            rule.was = now;
        }
        fired
    }
}

impl KeyValues {
    /// A key's new value: `first` if it had none before.
    #[inline]
    pub fn observe(&mut self, x: f64, first: bool) {
        if first {
            *self = KeyValues {
                now: x,
                prev: f64::NAN,
                start: x,
                rises: 0,
                falls: 0,
            };
            return;
        }
        self.prev = self.now;
        (self.rises, self.falls) = if x > self.prev {
            (self.rises + 1, 0)
        } else if x < self.prev {
            (0, self.falls + 1)
        } else {
            (0, 0)
        };
        self.now = x;
    }
}

/// A condition evaluated over values a caller feeds it, key by key (a
/// client's `idict wait-for`), with the run's meaning of `prev`, `start`,
/// `rises` and `falls`.
#[derive(Debug, Clone)]
pub struct Evaluator {
    condition: Condition,
    values: Vec<KeyValues>,
    seen: Vec<bool>,
}

impl Evaluator {
    pub fn new(condition: Condition) -> Self {
        let n = condition.keys.len();
        Evaluator {
            condition,
            values: vec![KeyValues::default(); n],
            seen: vec![false; n],
        }
    }

    /// The keys the condition reads.
    pub fn keys(&self) -> &[String] {
        &self.condition.keys
    }

    /// `key`'s next value (ignored if the condition does not read it).
    pub fn observe(&mut self, key: &str, x: f64) {
        if let Some(i) = self.condition.keys.iter().position(|k| k == key) {
            self.values[i].observe(x, !self.seen[i]);
            self.seen[i] = true;
        }
    }

    /// Whether the condition holds; `None` until every key it reads has
    /// had a value.
    pub fn holds(&self) -> Option<bool> {
        self.seen
            .iter()
            .all(|s| *s)
            .then(|| self.condition.expr.eval(&self.values))
    }
}

/// The text a firing logs: which trigger, at which version, and the
/// values that made it true.
pub fn firing_text(f: &TriggerFiring, actions: &TriggerActions) -> String {
    let values: Vec<String> = f
        .values
        .iter()
        .map(|(k, v)| format!("{k} = {}", short_number(*v)))
        .collect();
    let mut text = format!(
        "trigger '{}' fired at v{}: {} ({})",
        f.name,
        f.version,
        f.condition,
        values.join(", ")
    );
    let mut doing = Vec::new();
    if actions.terminate {
        doing.push("terminating");
    } else if actions.pause {
        doing.push("pausing");
    }
    if actions.checkpoint {
        doing.push("checkpointing");
    }
    if !doing.is_empty() {
        text.push_str(&format!(" — {}", doing.join(", ")));
    }
    if !actions.message.is_empty() {
        text.push_str(&format!(": {}", actions.message));
    }
    text
}

/// A number as a message shows it: whole numbers whole, others to 6
/// significant digits, very large or small ones in e-notation.
pub fn short_number(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        (if x > 0.0 { "inf" } else { "-inf" }).into()
    } else if x == x.trunc() && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if (1e-4..1e6).contains(&x.abs()) {
        let s = format!("{x:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{x:.5e}")
    }
}

/// The level a firing logs at when its actions name none.
pub const DEFAULT_LEVEL: Level = Level::Warn;
