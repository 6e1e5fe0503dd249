//! One client's Watch stream. The client has a cursor (the version it has);
//! whenever it can take a message, the stream builds one from the cursor to
//! the newest version. Nothing is queued per client: a slow client simply
//! gets the newest state coalesced, with every scalar sample since its
//! previous message read from the history. The first messages are the full
//! state, chunked, each chunk built only when the client can take it (so a
//! watcher holds at most one message, plus handles to shared values).

use super::parts::{self, ValueParts};
use super::shared::Shared;
use super::thinning::Cursors;
use idict_core::Inner;
use idict_core::history::HistoryPieces;
use idict_core::history::SharedSeries;
use idict_core::model::Status;
use idict_core::pins::WatchPin;
use idict_core::published::PubEntry;
use idict_core::tuning::{
    MAX_SAMPLES_PER_MESSAGE, MESSAGES_FOR_LATE_JOINERS, PART_BYTES, SAMPLE_SPAN, SAMPLES_PER_CHUNK,
};
use idict_core::value::Value;
use idict_core::wire;
use idict_proto::v1 as pb;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

/// Counts a watcher while it lives.
struct WatcherGuard(Arc<Shared>);
impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::AcqRel);
        self.0.watchers_left.store(true, Ordering::Release);
    }
}

/// The full state a new watcher still has to receive, taken at one version:
/// values are shared handles (arrays are reference-counted), histories are
/// copied a chunk at a time as the client takes them.
struct FirstState {
    version: u64,
    time: f64,
    status: Status,
    entries: std::iter::Peekable<std::vec::IntoIter<(Arc<str>, PubEntry)>>,
    /// A value too large for a chunk, on its way in parts.
    parts: Option<ValueParts>,
    /// Every key's samples up to the version the histories were complete
    /// through (the rest follow in deltas).
    histories: HistoryPieces,
    messages: Vec<pb::LogMessage>,
    chunks_sent: usize,
    /// Samples in the packed form.
    packed: bool,
}

impl FirstState {
    /// The next chunk, about `budget` bytes; `more` says whether another
    /// follows. Samples are taken as sent by `cursors`.
    fn next_chunk(&mut self, budget: usize, cursors: &mut Cursors) -> pb::WatchUpdate {
        let mut cur = pb::WatchUpdate {
            messages: std::mem::take(&mut self.messages),
            ..Default::default()
        };
        let mut size = 0usize;
        if let Some(parts) = self.parts.as_mut() {
            cur.part = Some(parts.next(PART_BYTES));
            if parts.is_done() {
                self.parts = None;
            }
            size = budget;
        }
        while size < budget
            && let Some((k, e)) = self.entries.peek()
        {
            if parts::too_large(&e.value, budget) {
                // Parts go one per message: after this chunk, or now.
                if cur.changed.is_empty() {
                    let mut p = ValueParts::new(k, &e.value);
                    cur.part = Some(p.next(PART_BYTES));
                    self.parts = (!p.is_done()).then_some(p);
                    self.entries.next();
                }
                size = budget;
                break;
            }
            cur.changed.push(entry(k, &e.value));
            size += e.value.approx_wire_bytes() + k.len();
            self.entries.next();
        }
        while size < budget {
            // Samples take 24 bytes on the wire (version, time, value).
            let room = ((budget - size) / 24).clamp(1, SAMPLES_PER_CHUNK);
            let Some((key, piece)) = self.histories.next_piece(room) else {
                break;
            };
            if !piece.is_empty() {
                size += piece.len() * 24 + key.len();
                cur.thinned.extend(cursors.take(&key, &piece));
                cur.samples
                    .push(wire::series_to_proto(&key, piece.series, self.packed));
            }
            if self.histories.within_key() {
                // One key per chunk at most once: the next chunk goes on.
                break;
            }
        }
        let more =
            self.parts.is_some() || self.entries.peek().is_some() || !self.histories.is_done();
        cur.version = self.version;
        cur.time = self.time;
        cur.reset = self.chunks_sent == 0;
        cur.more = more;
        cur.status = Some(wire::status_to_proto(&self.status));
        cur.last = !more && self.status.state.is_terminal();
        self.chunks_sent += 1;
        cur
    }
}

/// The values of a delta too large for its message, sent after it in parts
/// (the delta's message says `more`).
struct Tail {
    version: u64,
    time: f64,
    status: pb::Status,
    /// The delta was the stream's last: so is the final part.
    last: bool,
    current: ValueParts,
    rest: VecDeque<(Arc<str>, Value)>,
}

impl Tail {
    /// The next part's message, and whether it is the final one.
    fn next(&mut self, budget: usize) -> (pb::WatchUpdate, bool) {
        let part = self.current.next(budget);
        let mut finished = false;
        if self.current.is_done() {
            match self.rest.pop_front() {
                Some((k, v)) => self.current = ValueParts::new(&k, &v),
                None => finished = true,
            }
        }
        let m = pb::WatchUpdate {
            version: self.version,
            time: self.time,
            status: Some(self.status.clone()),
            part: Some(part),
            more: !finished,
            last: finished && self.last,
            ..Default::default()
        };
        (m, finished)
    }
}

pub(crate) struct Watcher {
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    news: watch::Receiver<u64>,
    prefix: String,
    cursor: u64,
    /// The version up to which samples were sent (at most `cursor`: after a
    /// long lag, samples follow the state in bounded messages).
    sample_cursor: u64,
    /// `sample_cursor`, shared with the history so it keeps what we still need.
    pin: Arc<WatchPin>,
    message_cursor: u64,
    last_status: Option<Status>,
    /// The history handles of every key, and the generation of the
    /// mirror's history list they were taken at.
    all_series: (u64, Vec<(Arc<str>, SharedSeries)>),
    /// The full state, while it is being sent.
    first: Option<FirstState>,
    /// A delta's large values, while they are being sent.
    tail: Option<Tail>,
    /// Where the client is in each key's samples: what it was not sent is
    /// reported, never silently skipped.
    cursors: Cursors,
    /// The client asked for samples in the packed form.
    packed: bool,
    done: bool,
    /// The mirror's rewinds when the state being sent was taken.
    rewinds: u64,
    /// The client asked for every sample from the start in the first state.
    with_history: bool,
    /// The last delta took in all the news there was: until more comes (or
    /// samples are owed), another delta would find nothing.
    up_to_news: bool,
    _guard: WatcherGuard,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Unpin first (the registry holds the pin weakly), then give back the
        // history this watcher alone was keeping.
        let mine = self.pin.cursor();
        self.pin = Arc::new(WatchPin::new(u64::MAX, 0));
        // The histories are listed from the server's mirror: a list of every
        // key is not taken under the computation's `published` lock.
        let mirror = &self.shared.mirror;
        self.inner
            .release_history(mine, || mirror.read().history.values().cloned().collect());
    }
}

fn entry(key: &str, v: &Value) -> pb::Entry {
    pb::Entry {
        key: key.to_owned(),
        value: Some(wire::value_to_proto(v)),
    }
}

impl Watcher {
    pub fn new(inner: Arc<Inner>, shared: Arc<Shared>, req: pb::WatchRequest) -> Self {
        shared.watchers.fetch_add(1, Ordering::AcqRel);
        let pin = Arc::new(WatchPin::new(req.since_version, inner.elapsed_ms()));
        let mut w = Watcher {
            news: shared.news.clone(),
            inner,
            prefix: req.prefix,
            cursor: req.since_version,
            sample_cursor: req.since_version,
            pin,
            message_cursor: 0,
            last_status: None,
            all_series: (u64::MAX, Vec::new()),
            first: None,
            tail: None,
            cursors: Cursors::default(),
            packed: req.packed_samples,
            done: false,
            rewinds: 0,
            with_history: req.with_history,
            up_to_news: false,
            _guard: WatcherGuard(shared.clone()),
            shared,
        };
        w.inner.pins.register(&w.pin);
        // A new watcher starts from the newest state, not the last frame.
        w.inner.refresh_mirror(&w.shared.mirror);
        let newest = w.shared.mirror.read().version;
        // A replay's versions can go back: its state is always sent whole.
        let replay = w.inner.options.replay_of.is_some();
        if req.since_version == 0 || req.since_version > newest || replay {
            w.first_state(req.with_history);
        } else {
            // A resuming client keeps its messages; send only newer ones.
            w.message_cursor = u64::MAX;
        }
        w.place_cursors();
        w
    }

    /// With the whole history in its first state, the client is owed every
    /// sample from the start; otherwise those after where its samples begin.
    fn place_cursors(&mut self) {
        if !(self.first.is_some() && self.with_history) {
            let series = self.shared.mirror.read().histories(&self.prefix);
            self.cursors = Cursors::after(&series, self.sample_cursor);
        }
    }

    /// The next message for the client, waiting for news if there is none;
    /// `None` ends the stream.
    pub async fn next(&mut self) -> Option<pb::WatchUpdate> {
        self.pin.touch(self.inner.elapsed_ms());
        let chunk_bytes = self.chunk_bytes();
        loop {
            if let Some(first) = self.first.as_mut() {
                let chunk = first.next_chunk(chunk_bytes, &mut self.cursors);
                if !chunk.more {
                    self.first = None;
                }
                return Some(self.sent(chunk));
            }
            if let Some(tail) = self.tail.as_mut() {
                let (m, finished) = tail.next(PART_BYTES);
                if finished {
                    self.tail = None;
                }
                return Some(self.sent(m));
            }
            if self.done {
                return None;
            }
            // The stream is polled again as soon as a message is encoded
            // (tonic gathers what is ready): a whole delta built then finds
            // nothing new. So with no news since, it waits for news at once.
            let quiet =
                self.up_to_news && !self.news.has_changed().unwrap_or(true) && !self.owes_samples();
            if !quiet {
                self.news.borrow_and_update();
                if let Some(m) = self.delta() {
                    self.up_to_news = !self.owes_samples();
                    return Some(self.sent(m));
                }
            }
            self.up_to_news = false;
            if self.first.is_some() {
                // A replay went back: the whole state again.
                continue;
            }
            if self.news.changed().await.is_err() {
                // The server is closing: what was published before still
                // goes out (a recorder closed right after the final
                // update records it), then the stream ends.
                self.inner.refresh_mirror(&self.shared.mirror);
                return self.delta().map(|m| self.sent(m));
            }
        }
    }

    /// Samples the histories hold that this watcher was not sent yet.
    fn owes_samples(&self) -> bool {
        self.sample_cursor < self.cursor.min(self.inner.samples_through())
    }

    /// The size a message aims at: at least 1 KiB, so a chunk always takes
    /// something (a size of 0 sent empty chunks for ever).
    fn chunk_bytes(&self) -> usize {
        self.shared.options.snapshot_chunk_bytes.max(1024)
    }

    /// The run's status, read before the mirror: once it is terminal the
    /// final version is published, and the mirror is brought up to it.
    fn status(&self) -> Status {
        let status = self.inner.status();
        if status.state.is_terminal() {
            self.inner.refresh_mirror(&self.shared.mirror);
        }
        status
    }

    fn sent(&self, m: pb::WatchUpdate) -> pb::WatchUpdate {
        self.shared.messages_sent.fetch_add(1, Ordering::Relaxed);
        m
    }

    /// A key's value as published now (the mirror's).
    pub fn published_value(&self, key: &str) -> Option<Value> {
        self.shared
            .mirror
            .read()
            .entry(key)
            .map(|e| e.value.clone())
    }

    /// After a replay went back: the whole state again, with the history
    /// if the client asked for it (it drops what it had on the `reset`).
    fn start_over(&mut self) {
        self.cursors = Cursors::default();
        self.all_series = (u64::MAX, Vec::new());
        self.sample_cursor = 0;
        self.first_state(self.with_history);
        self.place_cursors();
    }

    /// Takes the full state (handles only) to send in chunks.
    fn first_state(&mut self, with_history: bool) {
        let status = self.status();
        let (version, time, entries, histories, messages) = {
            let p = self.shared.mirror.read();
            self.rewinds = p.rewinds;
            let histories = if with_history {
                p.histories(&self.prefix)
            } else {
                Vec::new()
            };
            let mut messages = p.messages_after(0);
            let skip = messages.len().saturating_sub(MESSAGES_FOR_LATE_JOINERS);
            messages.drain(..skip);
            (
                p.version,
                p.time,
                p.sorted_entries(&self.prefix),
                histories,
                messages,
            )
        };
        // Samples still staged by the computation follow in deltas.
        let samples_upto = version.min(self.inner.samples_through());
        self.message_cursor = messages.last().map_or(0, |m| m.seq);
        let terminal = status.state.is_terminal();
        self.first = Some(FirstState {
            version,
            time,
            entries: entries.into_iter().peekable(),
            parts: None,
            histories: HistoryPieces::new(histories, 0, samples_upto),
            messages: messages.iter().map(wire::message_to_proto).collect(),
            chunks_sent: 0,
            packed: self.packed,
            status: status.clone(),
        });
        self.cursor = version;
        self.sample_cursor = samples_upto;
        self.pin.set(samples_upto);
        self.done = terminal;
        self.last_status = Some(status);
    }

    /// Everything after the cursor as one message, or `None` if nothing new.
    /// The state jumps to the newest version; samples follow in spans of at
    /// most `SAMPLE_SPAN` versions per message, so a watcher that fell far
    /// behind gets every sample without any one message growing unbounded.
    fn delta(&mut self) -> Option<pb::WatchUpdate> {
        // Status first: once it reads Finished, the final version is published.
        let status = self.status();
        // Samples are sendable up to the version the histories are complete
        // through (the computation may still hold newer ones staged).
        let through = self.inner.samples_through();
        let catching_up = self.sample_cursor < self.cursor.min(through);
        let (mut d, series, messages) = {
            let p = self.shared.mirror.read();
            if p.rewinds != self.rewinds {
                // A replay went back: no delta leads there from here.
                drop(p);
                self.start_over();
                return None;
            }
            let (d, changed_series) = p.delta_since(self.cursor, &self.prefix);
            // The histories with samples still to send: those of the keys
            // changed since the sample cursor, or (far behind) every key's.
            let since_samples = if self.sample_cursor == self.cursor {
                Some(changed_series)
            } else if self.sample_cursor + SAMPLE_SPAN >= d.version {
                p.series_changed_since(self.sample_cursor, &self.prefix)
            } else {
                None
            };
            let series = since_samples.unwrap_or_else(|| {
                // Every key's history: cached, refreshed only when keys appear.
                if self.all_series.0 != p.history_generation {
                    self.all_series = (p.history_generation, p.histories(&self.prefix));
                }
                self.all_series.1.clone()
            });
            let messages = if self.message_cursor == u64::MAX {
                self.message_cursor = p.next_message_seq - 1;
                Vec::new()
            } else {
                p.messages_after(self.message_cursor)
            };
            (d, series, messages)
        };
        let terminal = status.state.is_terminal();
        let status_changed = self.last_status.as_ref() != Some(&status);
        let nothing_new = d.version == self.cursor && messages.is_empty() && !status_changed;
        if nothing_new && !catching_up && !terminal {
            return None;
        }
        d.sort();
        let upto = d
            .version
            .min(through)
            .min(self.sample_cursor.saturating_add(SAMPLE_SPAN))
            .max(self.sample_cursor);
        let upto = within_sample_budget(&series, self.sample_cursor, upto);
        let (samples, thinned) = copy_samples(
            series,
            self.sample_cursor,
            upto,
            &mut self.cursors,
            self.packed,
        );
        let last = terminal && upto >= d.version;
        let chunk_bytes = self.chunk_bytes();
        let (mut large, mut small) = (VecDeque::new(), Vec::new());
        for (k, v) in d.changed {
            if parts::too_large(&v, chunk_bytes) {
                large.push_back((k, v));
            } else {
                small.push(entry(&k, &v));
            }
        }
        let status_pb = wire::status_to_proto(&status);
        self.tail = large.pop_front().map(|(k, v)| Tail {
            version: d.version,
            time: d.time,
            status: status_pb.clone(),
            last,
            current: ValueParts::new(&k, &v),
            rest: large,
        });
        let m = pb::WatchUpdate {
            version: d.version,
            reset: d.reset,
            more: self.tail.is_some(),
            changed: small,
            removed: d.removed.iter().map(|k| k.to_string()).collect(),
            samples,
            status: Some(status_pb),
            messages: messages.iter().map(wire::message_to_proto).collect(),
            applied: d.applied.iter().map(wire::applied_to_proto).collect(),
            time: d.time,
            last: last && self.tail.is_none(),
            thinned,
            part: None,
        };
        self.cursor = d.version;
        self.sample_cursor = upto;
        self.pin.set(upto);
        if let Some(last) = messages.last() {
            self.message_cursor = last.seq;
        }
        self.last_status = Some(status);
        self.done = last;
        Some(m)
    }
}

/// Lowers `upto` so that `(after, upto]` holds about `MAX_SAMPLES_PER_MESSAGE`
/// samples at most (assuming samples spread evenly over versions), keeping
/// at least one version so the watcher always moves on.
fn within_sample_budget(series: &[(Arc<str>, SharedSeries)], after: u64, upto: u64) -> u64 {
    if upto <= after + 1 {
        return upto;
    }
    let n: usize = series
        .iter()
        .map(|(_, s)| s.lock().count(after, upto))
        .sum();
    if n <= MAX_SAMPLES_PER_MESSAGE {
        return upto;
    }
    let span = (upto - after) as u128 * MAX_SAMPLES_PER_MESSAGE as u128 / n as u128;
    after + (span as u64).max(1)
}

/// Copies each key's samples in `(after, upto]`, a piece at a time so the
/// computation is never held up for long, and says what of them the
/// histories thinned before they could be sent.
fn copy_samples(
    series: Vec<(Arc<str>, SharedSeries)>,
    after: u64,
    upto: u64,
    cursors: &mut Cursors,
    packed: bool,
) -> (Vec<pb::SampleSeries>, Vec<pb::Thinned>) {
    let mut samples = Vec::new();
    let mut thinned = Vec::new();
    for (k, s) in series {
        let piece = idict_core::history::copy_range(&s, after, upto);
        if piece.is_empty() {
            continue;
        }
        thinned.extend(cursors.take(&k, &piece));
        samples.push(wire::series_to_proto(&k, piece.series, packed));
    }
    (samples, thinned)
}
