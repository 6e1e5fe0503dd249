//! The run of an MPI job: [`MpiDict`], one per rank over a communicator.

use crate::decision::{Decision, HEADER_WORDS};
use crate::field::{BadBlock, Block, RECORD_WORDS};
use crate::reduce::{Reduction, as_number};
use crate::watchdog;
use crate::{BLOCKS_SUFFIX, RANKS_SUFFIX};
use idict::{
    DictGuard, IDict, KeyId, NdArray, ServeError, ServeOptions, Server, UpdateError, Value,
    WatcherCount, Writable,
};
use mpi::datatype::PartitionMut;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often rank 0 stitches the decomposed fields while someone watches
/// (25 frames a second), and while nobody does.
const STITCH_WATCHED: Duration = Duration::from_millis(40);
const STITCH_UNWATCHED: Duration = Duration::from_secs(2);

/// How often rank 0 publishes each rank's values (`KEY@ranks`) at most,
/// but for its holds and last update.
const RANKS_EVERY: Duration = Duration::from_millis(50);

/// Each rank's values of the reduced keys, `all` as gathered (rank by
/// rank), as `KEY@ranks` arrays.
fn publish_ranks(map: &mut DictGuard<'_>, ranks_keys: &[String], all: &[f64], size: usize) {
    let n = ranks_keys.len();
    if n == 0 || all.len() < n * size {
        return;
    }
    for (i, key) in ranks_keys.iter().enumerate() {
        let values: Vec<f64> = (0..size).map(|r| all[r * n + i]).collect();
        if let Ok(array) = NdArray::from_f64_vec(values, vec![size]) {
            map.insert(key.as_str(), Value::Array(array));
        }
    }
}

/// How often a held rank 0 looks for ranks that have arrived.
const ROLL_CALL: Duration = Duration::from_millis(100);
/// The tag of a rank's "I have reached the wait() you hold in".
const ARRIVED: mpi::Tag = 7001;

/// The ranks still marked behind.
fn ranks_behind(behind: &[bool]) -> Vec<u32> {
    behind
        .iter()
        .enumerate()
        .filter(|(_, b)| **b)
        .map(|(r, _)| r as u32)
        .collect()
}

/// Bytes of a host's name sent to rank 0 (longer names are cut: they
/// only tell which ranks share rank 0's host).
const HOST_BYTES: usize = 64;

/// Every rank's (pid, host), gathered at rank 0 (collective; empty on the
/// other ranks but for rank 0's own, first, which all get).
fn processes(comm: &SimpleCommunicator) -> Vec<(u32, String)> {
    let mut mine = [0u8; 4 + HOST_BYTES];
    mine[..4].copy_from_slice(&std::process::id().to_le_bytes());
    let host = idict::runfile::host_name();
    let cut = host.len().min(HOST_BYTES);
    mine[4..4 + cut].copy_from_slice(&host.as_bytes()[..cut]);
    let root = comm.process_at_rank(0);
    let decode = |b: &[u8]| {
        let pid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let host = &b[4..];
        let end = host.iter().position(|&c| c == 0).unwrap_or(host.len());
        (pid, String::from_utf8_lossy(&host[..end]).into_owned())
    };
    let mut root_pid = [0u8; 4];
    let all = if comm.rank() == 0 {
        let mut all = vec![0u8; mine.len() * comm.size() as usize];
        root.gather_into_root(&mine[..], &mut all[..]);
        root_pid.copy_from_slice(&mine[..4]);
        all.chunks(mine.len()).map(decode).collect()
    } else {
        root.gather_into(&mine[..]);
        Vec::new()
    };
    root.broadcast_into(&mut root_pid[..]);
    if comm.rank() == 0 {
        all
    } else {
        vec![(u32::from_le_bytes(root_pid), String::new())]
    }
}

/// How long a rank waiting for a held rank 0's decision spins before it
/// sleeps: a step that only just held goes on at once, a paused job's
/// ranks do not burn their cores.
const SPIN: Duration = Duration::from_micros(200);
/// The longest sleep between two looks while rank 0 holds the job.
const MAX_NAP: Duration = Duration::from_millis(10);

/// Why an MPI run could not be made or go on.
#[derive(Debug, thiserror::Error)]
pub enum MpiError {
    #[error("rank 0 could not serve the run: {0}")]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Update(#[from] UpdateError),
    #[error(transparent)]
    Garbled(#[from] crate::decision::Garbled),
}

/// One rank's part of a run that is the whole MPI job.
///
/// Every rank calls `wait()` and `notify_update()` the same number of
/// times, in the same order (they are collective, like the program's own
/// MPI calls); the rest is local. Drop it before MPI is finalized (before
/// the `Universe`).
pub struct MpiDict {
    local: IDict,
    /// Set on rank 0 at the job's last update, after which its ranks may
    /// exit: its watchdog lets them.
    ending: Arc<AtomicBool>,
    /// A duplicate of the program's communicator: idict's messages never
    /// match the program's.
    comm: SimpleCommunicator,
    rank: i32,
    size: i32,
    server: Option<Server>,
    /// Rank 0: how many watch its server (kept if the server is taken).
    watchers: Option<WatcherCount>,
    reductions: HashMap<String, Reduction>,
    /// The keys reduced, in the order every rank sends their values: rank
    /// 0's numeric scalars, agreed at a `wait()`.
    keys: Vec<String>,
    /// Their `KEY@ranks` names, made once, and their reductions (looked
    /// up once, not at every update).
    ranks_keys: Vec<String>,
    hows: Vec<Reduction>,
    /// Rank 0: the key generation `keys` was listed at.
    listed_at: u64,
    /// Rank 0: its own latest value of each key (the map holds the
    /// reduced one once published), and whether it was a whole number.
    own: Vec<(f64, bool)>,
    /// Each update's values: this rank's, and on rank 0 everyone's.
    send: Vec<f64>,
    /// Where each reduced key sits in the map (`None`: not there), and the
    /// map's key generation they were looked up at: an update reaches the
    /// keys without hashing their names.
    ids: Vec<Option<KeyId>>,
    ids_at: u64,
    /// A scratch row: one key's value on each rank.
    row: Vec<f64>,
    all: Vec<f64>,
    updates: u64,
    /// Fields decomposed over the ranks: this rank's blocks, by key.
    fields: Vec<Field>,
    /// This step's update stitches them (rank 0 decided at the wait).
    stitch: bool,
    /// Rank 0: when it last did, and every rank's block of each field
    /// (learned at the first stitch).
    stitched_at: Option<Instant>,
    blocks: Option<Vec<Vec<Block>>>,
    /// Rank 0: when it last published each rank's values, and whether an
    /// update has gathered newer ones since.
    ranks_at: Option<Instant>,
    ranks_stale: bool,
}

/// One decomposed field, as this rank holds it.
struct Field {
    key: String,
    /// In row-major order (a column-major field's, reversed).
    block: Block,
    /// Declared column-major: stitched and shown in its program's order.
    column_major: bool,
    /// The block's latest values, copied only for a stitch.
    data: Vec<f64>,
}

impl MpiDict {
    /// A rank's part of the run `name` over `comm` (collective: every rank
    /// of `comm` calls it). Rank 0's run says it is made of `comm.size()`
    /// ranks.
    pub fn new(name: impl Into<String>, comm: &impl Communicator) -> MpiDict {
        let comm = comm.duplicate();
        let (rank, size) = (comm.rank(), comm.size());
        let local = IDict::builder(name)
            .ranks(u32::try_from(size).unwrap_or(1))
            .build();
        let ending = Arc::new(AtomicBool::new(false));
        // Rank 0 watches the ranks of its host; the others tell it why,
        // if they panic.
        let peers = processes(&comm);
        if rank == 0 {
            let here = idict::runfile::host_name();
            let here = &here.as_bytes()[..here.len().min(HOST_BYTES)];
            let peers = peers
                .into_iter()
                .enumerate()
                .skip(1)
                .filter(|(_, (_, host))| host.as_bytes() == here)
                .map(|(r, (pid, _))| (r, pid))
                .collect();
            watchdog::watch(local.clone(), peers, ending.clone());
        } else if let Some(&(root_pid, _)) = peers.first() {
            watchdog::report_panics(root_pid, rank as usize);
        }
        MpiDict {
            ending,
            local,
            comm,
            rank,
            size,
            server: None,
            watchers: None,
            reductions: HashMap::new(),
            keys: Vec::new(),
            ranks_keys: Vec::new(),
            hows: Vec::new(),
            listed_at: u64::MAX,
            own: Vec::new(),
            send: Vec::new(),
            ids: Vec::new(),
            ids_at: u64::MAX,
            row: Vec::new(),
            all: Vec::new(),
            updates: 0,
            fields: Vec::new(),
            stitch: false,
            stitched_at: None,
            blocks: None,
            ranks_at: None,
            ranks_stale: false,
        }
    }

    /// Declares this rank's block of a field decomposed over the ranks:
    /// the field's global shape, and the block's offset and shape in it
    /// (row-major, 1 to 3 dimensions, f64). Every rank declares the same
    /// fields, before its first `wait()`. Rank 0 publishes the whole field
    /// under `key`, stitched only while someone watches the run (at most
    /// every 40 ms) and otherwise every 2 s: unwatched, it costs nothing.
    pub fn field(
        &mut self,
        key: impl Into<String>,
        global: &[usize],
        offset: &[usize],
        shape: &[usize],
    ) -> Result<(), BadBlock> {
        self.declare(key.into(), Block::new(global, offset, shape)?, false)
    }

    /// Like [`field`](Self::field), for a column-major program (Fortran):
    /// shapes and offset in its own order, its block's values as they lie
    /// in its memory. The field shows with the program's own shape.
    pub fn field_column_major(
        &mut self,
        key: impl Into<String>,
        global: &[usize],
        offset: &[usize],
        shape: &[usize],
    ) -> Result<(), BadBlock> {
        let reversed = |x: &[usize]| x.iter().rev().copied().collect::<Vec<_>>();
        let block = Block::new(&reversed(global), &reversed(offset), &reversed(shape))?;
        self.declare(key.into(), block, true)
    }

    fn declare(&mut self, key: String, block: Block, column_major: bool) -> Result<(), BadBlock> {
        self.fields.retain(|f| f.key != key);
        self.fields.push(Field {
            data: vec![0.0; block.len()],
            key,
            block,
            column_major,
        });
        self.fields.sort_by(|a, b| a.key.cmp(&b.key));
        self.blocks = None;
        Ok(())
    }

    /// True when this step's update stitches the fields: a program may
    /// skip preparing its blocks otherwise.
    pub fn stitching(&self) -> bool {
        self.stitch
    }

    /// This step's values of this rank's block of `key` (row-major), for
    /// the update to stitch. Copied only when it does (`stitching()`).
    pub fn set_block(&mut self, key: &str, data: &[f64]) -> Result<(), BadBlock> {
        let field = self
            .fields
            .iter_mut()
            .find(|f| f.key == key)
            .ok_or_else(|| BadBlock(format!("no field '{key}' declared on this rank")))?;
        if data.len() != field.block.len() {
            return Err(BadBlock(format!(
                "{} values for the block of '{key}' of shape {:?}: it takes {}",
                data.len(),
                field.block.shape,
                field.block.len()
            )));
        }
        if self.stitch {
            field.data.copy_from_slice(data);
        }
        Ok(())
    }

    /// Rank 0 serves the run (its run file names it, with its ranks); the
    /// other ranks serve nothing. Not collective.
    pub fn serve(&mut self) -> Result<(), MpiError> {
        self.serve_with(ServeOptions::default())
    }

    /// Like `serve`, with options.
    pub fn serve_with(&mut self, options: ServeOptions) -> Result<(), MpiError> {
        if self.rank == 0 && self.server.is_none() {
            let server = options.serve(&self.local)?;
            self.watchers = Some(server.watcher_count());
            self.server = Some(server);
        }
        Ok(())
    }

    /// Takes rank 0's server, for a caller that closes it apart (a
    /// language binding's own handle); stitching still knows who watches.
    pub fn take_server(&mut self) -> Option<Server> {
        self.server.take()
    }

    /// Rank 0's server, once served.
    pub fn server(&self) -> Option<&Server> {
        self.server.as_ref()
    }

    /// Rank 0: lets watchers take the final update, then closes the
    /// server (at most `linger`), keeping the rest; the other ranks:
    /// nothing.
    pub fn close_server(&mut self, linger: Duration) {
        if let Some(server) = self.server.take() {
            server.wait_then_close(linger);
        }
    }

    pub fn rank(&self) -> i32 {
        self.rank
    }

    pub fn size(&self) -> i32 {
        self.size
    }

    /// This rank's dictionary: set values in it under its lock. On rank 0
    /// it is the run's: after an update, a reduced key holds the reduced
    /// value there.
    pub fn idict(&self) -> &IDict {
        &self.local
    }

    /// This rank's dictionary, locked.
    pub fn lock(&self) -> DictGuard<'_> {
        self.local.lock()
    }

    /// Declares a key clients may write (every rank declares it, with the
    /// same rule; rank 0 checks writes against it and every rank gets the
    /// write at the same step, which `KEY@ranks` shows).
    pub fn writable(&self, key: impl Into<String>, initial: impl Into<Value>) -> Writable<'_> {
        self.local.writable(key, initial)
    }

    /// A trigger over the job's values as clients see them (reduced):
    /// checked on rank 0 at each update, its pause or terminate reaches
    /// every rank at the same step (see `IDict::trigger`). Every rank may
    /// call it; the others only check the condition, so a bad one is
    /// refused alike on all.
    pub fn trigger(
        &self,
        name: &str,
        condition: &str,
        actions: idict::TriggerActions,
    ) -> Result<Vec<String>, idict::TriggerError> {
        if self.rank == 0 {
            self.local.trigger(name, condition, actions)
        } else {
            idict::triggers::expr::Condition::parse(condition)?;
            Ok(Vec::new())
        }
    }

    /// How `key`'s values on the ranks become the run's (default: mean).
    pub fn reduce(&mut self, key: impl Into<String>, how: Reduction) {
        let key = key.into();
        if let Some(i) = self.keys.iter().position(|k| *k == key) {
            self.hows[i] = how;
        }
        self.reductions.insert(key, how);
    }

    /// The pause gate of the whole job (collective): rank 0's gate decides
    /// and every rank returns the same, having applied the same steering
    /// writes. While rank 0 holds, the other ranks sleep here.
    pub fn wait(&mut self) -> bool {
        let decision = if self.rank == 0 {
            self.decide()
        } else {
            self.hear()
        };
        match decision {
            Ok(d) => {
                if self.rank != 0 && !d.writes.is_empty() {
                    let mut map = self.local.lock();
                    for (key, value) in d.writes {
                        map.insert(key, value);
                    }
                }
                if let Some(keys) = d.keys {
                    self.agree(keys);
                }
                self.stitch = d.stitch;
                d.go
            }
            Err(e) => {
                // Rank 0 wrote it: a bug. Every rank stops at this step.
                tracing::error!("rank {}: {e}", self.rank);
                false
            }
        }
    }

    /// Rank 0: its gate's decision, told to every rank.
    fn decide(&mut self) -> Result<Decision, MpiError> {
        // While held: which ranks have not reached this wait() yet.
        let mut behind: Option<Vec<bool>> = None;
        let size = self.size as usize;
        // Called only when the gate is about to block, then every
        // ROLL_CALL while it does: the ranks are told to wait asleep, and
        // say when they are there.
        let mut stale = self.ranks_stale;
        let (go, applied) = {
            let (comm, local) = (&self.comm, &self.local);
            let (ranks_keys, all) = (&self.ranks_keys, &self.all);
            let root = comm.process_at_rank(0);
            local.wait_applying(ROLL_CALL, || {
                let b = behind.get_or_insert_with(|| {
                    let mut header = Decision::hold_header();
                    root.broadcast_into(&mut header[..]);
                    let mut b = vec![true; size];
                    b[0] = false;
                    b
                });
                if stale {
                    // Held: each rank's values of the last update, as they are.
                    publish_ranks(&mut local.lock(), ranks_keys, all, size);
                    stale = false;
                    if let Err(e) = local.notify_update() {
                        tracing::warn!("rank 0 could not publish the ranks' values: {e}");
                    }
                }
                while let Some(status) = comm.any_process().immediate_probe_with_tag(ARRIVED) {
                    let from = comm.process_at_rank(status.source_rank());
                    let (rank, _) = from.receive_with_tag::<u32>(ARRIVED);
                    if let Some(slot) = b.get_mut(rank as usize) {
                        *slot = false;
                    }
                }
                local.set_ranks_behind(ranks_behind(b));
                Ok::<(), ()>(())
            })
        };
        let held = behind.is_some();
        self.ranks_stale = stale;
        if let Some(b) = behind {
            // Every rank says it arrived: take the rest before going on, so
            // no message is left for the next hold.
            for (rank, _) in b.iter().enumerate().filter(|(_, behind)| **behind) {
                let _ = self
                    .comm
                    .process_at_rank(rank as i32)
                    .receive_with_tag::<u32>(ARRIVED);
            }
            self.local.set_ranks_behind(Vec::new());
        }
        let keys = self.relist();
        let root = self.comm.process_at_rank(0);
        let watched = self.watchers.as_ref().is_some_and(|w| w.get() > 0);
        let every = if watched {
            STITCH_WATCHED
        } else {
            STITCH_UNWATCHED
        };
        let stitch =
            !self.fields.is_empty() && self.stitched_at.is_none_or(|at| at.elapsed() >= every);
        let decision = Decision {
            go: go.unwrap_or(false),
            writes: applied.into_iter().map(|a| (a.key, a.value)).collect(),
            keys,
            stitch,
        };
        let (mut header, mut payload) = decision.encode();
        if held {
            // Nonblocking, as the ranks wait for it: a blocking broadcast
            // does not match a nonblocking one.
            mpi::request::scope(|scope| {
                root.immediate_broadcast_into(scope, &mut header[..]).wait();
            });
        } else {
            root.broadcast_into(&mut header[..]);
        }
        if !payload.is_empty() {
            root.broadcast_into(&mut payload[..]);
        }
        Ok(decision)
    }

    /// The other ranks: rank 0's decision; when rank 0 holds (it may for
    /// hours), waited for without burning the core.
    fn hear(&mut self) -> Result<Decision, MpiError> {
        let mut header = [0u64; HEADER_WORDS];
        let root = self.comm.process_at_rank(0);
        root.broadcast_into(&mut header[..]);
        if Decision::is_hold(&header) {
            // Rank 0 holds: say this rank is here (its status lists the
            // ranks still computing), then wait for the decision asleep.
            root.send_with_tag(&(self.rank as u32), ARRIVED);
            mpi::request::scope(|scope| {
                let mut request = root.immediate_broadcast_into(scope, &mut header[..]);
                let start = Instant::now();
                let mut nap = Duration::from_micros(50);
                loop {
                    match request.test() {
                        Ok(_) => break,
                        Err(pending) => request = pending,
                    }
                    if start.elapsed() < SPIN {
                        std::hint::spin_loop();
                    } else {
                        std::thread::sleep(nap);
                        nap = (nap * 2).min(MAX_NAP);
                    }
                }
            });
        }
        let mut payload = vec![0u8; Decision::payload_len(&header)];
        if !payload.is_empty() {
            root.broadcast_into(&mut payload[..]);
        }
        Ok(Decision::decode(&header, &payload)?)
    }

    /// Rank 0: the keys to reduce, if they changed since they were listed:
    /// its numeric scalars but the `@ranks` ones. Writable keys too: every
    /// rank holds the same value, and `dt@ranks` shows that they do.
    fn relist(&mut self) -> Option<Vec<String>> {
        let map = self.local.lock();
        let generation = map.key_generation();
        if generation == self.listed_at {
            return None;
        }
        self.listed_at = generation;
        let keys: Vec<String> = map
            .iter()
            .filter(|(k, v)| as_number(v).is_some() && !k.ends_with(RANKS_SUFFIX))
            .map(|(k, _)| k.to_string())
            .collect();
        (keys != self.keys).then_some(keys)
    }

    /// Every rank: the keys reduced from now on.
    fn agree(&mut self, keys: Vec<String>) {
        self.ranks_keys = keys.iter().map(|k| format!("{k}{RANKS_SUFFIX}")).collect();
        let mut kept: HashMap<&str, (f64, bool)> = self
            .keys
            .iter()
            .map(String::as_str)
            .zip(self.own.iter().copied())
            .collect();
        let own: Vec<(f64, bool)> = if self.rank == 0 {
            // Rank 0's own values: those it kept for keys reduced before
            // (its map holds their reduced values now); for new keys, what
            // it set, from its map (not reduced yet).
            let map = self.local.lock();
            keys.iter()
                .map(|k| {
                    kept.remove(k.as_str())
                        .or_else(|| map.get(k).and_then(as_number))
                        .unwrap_or((f64::NAN, false))
                })
                .collect()
        } else {
            vec![(f64::NAN, false); keys.len()]
        };
        self.own = own;
        self.hows = keys
            .iter()
            .map(|k| self.reductions.get(k).copied().unwrap_or_default())
            .collect();
        self.keys = keys;
    }

    /// Publishes an update of the whole job (collective): every rank sends
    /// rank 0 its values of the reduced keys; rank 0 publishes them
    /// reduced, and each rank's under `KEY@ranks`. Returns the version (on
    /// the other ranks: the number of updates so far, the same while rank
    /// 0 publishes every one).
    pub fn notify_update(&mut self) -> Result<u64, MpiError> {
        self.update(false)
    }

    /// The last update (collective): rank 0 publishes it and marks the run
    /// finished.
    pub fn notify_update_final(&mut self) -> Result<u64, MpiError> {
        self.update(true)
    }

    fn update(&mut self, last: bool) -> Result<u64, MpiError> {
        if last {
            self.ending.store(true, Ordering::Release);
        }
        let n = self.keys.len();
        self.send.clear();
        {
            let map = self.local.lock();
            if map.key_generation() != self.ids_at || self.ids.len() != n {
                self.ids = self.keys.iter().map(|k| map.key_id(k)).collect();
                self.ids_at = map.key_generation();
            }
            let value = |id: &Option<KeyId>| id.and_then(|id| map.get_by_id(id));
            if self.rank == 0 {
                // Rank 0's map holds the reduced values once published:
                // its own are those it set since, else the ones it kept.
                for (own, id) in self.own.iter_mut().zip(&self.ids) {
                    match value(id) {
                        Some((v, true)) => *own = as_number(v).unwrap_or((f64::NAN, false)),
                        Some((_, false)) => {}
                        None => *own = (f64::NAN, false),
                    }
                    self.send.push(own.0);
                }
            } else {
                for id in &self.ids {
                    let v = value(id).and_then(|(v, _)| as_number(v));
                    self.send.push(v.map_or(f64::NAN, |n| n.0));
                }
            }
        }
        let root = self.comm.process_at_rank(0);
        self.updates += 1;
        if self.rank != 0 {
            if n > 0 {
                root.gather_into(&self.send[..]);
            }
            if self.stitch {
                self.send_blocks();
            }
            return Ok(self.updates);
        }
        let size = self.size as usize;
        if n > 0 {
            self.all.resize(n * size, 0.0);
            root.gather_into_root(&self.send[..], &mut self.all[..]);
            let mut map = self.local.lock();
            self.row.resize(size, 0.0);
            // Another thread may have added or removed keys since.
            let ids_hold = map.key_generation() == self.ids_at;
            for (i, key) in self.keys.iter().enumerate() {
                for (r, v) in self.row.iter_mut().enumerate() {
                    *v = self.all[r * n + i];
                }
                let reduced = self.hows[i].apply(&self.row, self.own[i].1);
                let put = match self.ids[i] {
                    Some(id) if ids_hold => map.insert_by_id(id, reduced).map(drop),
                    _ => Err(reduced),
                };
                if let Err(reduced) = put {
                    map.insert(key.as_str(), reduced);
                }
            }
            // Each rank's values: at most every RANKS_EVERY (they are an
            // array a key, and publishing them was half of what an update
            // cost rank 0), at the last update, and when rank 0 holds (see
            // `decide`), so a held or finished job shows them as they are.
            self.ranks_stale = true;
            if last || self.ranks_at.is_none_or(|at| at.elapsed() >= RANKS_EVERY) {
                publish_ranks(&mut map, &self.ranks_keys, &self.all, size);
                self.ranks_at = Some(Instant::now());
                self.ranks_stale = false;
            }
        }
        if self.stitch {
            self.stitch_fields();
        }
        let version = if last {
            self.local.notify_update_final()?
        } else {
            self.local.notify_update()?
        };
        Ok(version)
    }

    /// The other ranks: their blocks (and, the first time, where they sit).
    fn send_blocks(&mut self) {
        let root = self.comm.process_at_rank(0);
        if self.blocks.is_none() {
            let records: Vec<u64> = self.fields.iter().flat_map(|f| f.block.encode()).collect();
            root.gather_into(&records[..]);
            self.blocks = Some(Vec::new());
        }
        for f in &self.fields {
            root.gather_varcount_into(&f.data[..]);
        }
        self.stitch = false;
    }

    /// Rank 0: every rank's block of each field, stitched and published.
    fn stitch_fields(&mut self) {
        let root = self.comm.process_at_rank(0);
        let size = self.size as usize;
        if self.blocks.is_none() {
            let mine: Vec<u64> = self.fields.iter().flat_map(|f| f.block.encode()).collect();
            let mut all = vec![0u64; mine.len() * size];
            root.gather_into_root(&mine[..], &mut all[..]);
            // blocks[field][rank]
            let mut blocks = vec![Vec::with_capacity(size); self.fields.len()];
            for (r, records) in all.chunks(mine.len().max(1)).enumerate() {
                for (i, record) in records.chunks(RECORD_WORDS).enumerate() {
                    let block = Block::decode(record).unwrap_or_else(|e| {
                        tracing::error!("rank {r}'s block of '{}': {e}", self.fields[i].key);
                        self.fields[i].block.clone()
                    });
                    blocks[i].push(block);
                }
            }
            // Where each rank's block sits, for clients (`get KEY --rank R`):
            // KEY@blocks, one row per rank, its offset then its shape.
            {
                let mut map = self.local.lock();
                for (f, blocks) in self.fields.iter().zip(&blocks) {
                    // In the order the field shows in.
                    let order = |x: &[usize]| -> Vec<i64> {
                        let x = x.iter().map(|&v| v as i64);
                        if f.column_major {
                            x.rev().collect()
                        } else {
                            x.collect()
                        }
                    };
                    let rows: Vec<i64> = blocks
                        .iter()
                        .flat_map(|b| [order(&b.offset), order(&b.shape)].concat())
                        .collect();
                    let shape = vec![size, 2 * f.block.global.len()];
                    if let Ok(layout) = Value::array(rows, shape) {
                        map.insert(format!("{}{BLOCKS_SUFFIX}", f.key), layout);
                    }
                }
            }
            self.blocks = Some(blocks);
        }
        let Some(blocks) = &self.blocks else {
            return;
        };
        for (f, blocks) in self.fields.iter().zip(blocks) {
            let counts: Vec<mpi::Count> = blocks.iter().map(|b| b.len() as mpi::Count).collect();
            let displs: Vec<mpi::Count> = counts
                .iter()
                .scan(0, |at, &c| {
                    let here = *at;
                    *at += c;
                    Some(here)
                })
                .collect();
            let mut received = vec![0.0f64; counts.iter().map(|&c| c as usize).sum()];
            {
                let mut partition = PartitionMut::new(&mut received[..], &counts[..], &displs[..]);
                root.gather_varcount_into_root(&f.data[..], &mut partition);
            }
            let mut field = vec![0.0f64; f.block.global_len()];
            for (r, b) in blocks.iter().enumerate() {
                let at = displs[r] as usize;
                let data = &received[at..at + b.len()];
                match f.column_major {
                    false => b.place(&mut field, data),
                    true => b.place_transposed(&mut field, data),
                }
            }
            let mut shape = f.block.global.clone();
            if f.column_major {
                shape.reverse();
            }
            if let Ok(array) = NdArray::from_f64_vec(field, shape) {
                self.local
                    .lock()
                    .insert(f.key.as_str(), Value::Array(array));
            }
        }
        self.stitched_at = Some(Instant::now());
        self.stitch = false;
    }

    /// Rank 0: lets watchers take the final update, then closes the server
    /// (at most `linger`). The other ranks: nothing.
    pub fn close(mut self, linger: Duration) {
        if let Some(server) = self.server.take() {
            server.wait_then_close(linger);
        }
    }
}
